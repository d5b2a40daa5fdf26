package protocol

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// ParseDuration reads a Go duration ("90s", "1h30m", "-5m") or a relative
// time in Taskcluster's fromNow syntax ("30 days", "1 year", "2h",
// "1d2h3min", "- 1 hour"; see FromNow: a month is 30 days and a year 365),
// so that tcauth takes for a duration what `taskcluster from-now` takes.
// The Go form is tried first; it also reads "0" and fractions ("1.5h"),
// which fromNow has no words for.
//
// Unlike FromNow, an expression must name at least one amount: fromNow
// reads "" and "-" as now, which as a duration would silently mean zero
// (and zero means "the default" to most configuration fields). A bare
// number other than "0" is refused by both grammars: it has no unit. The
// result must fit a time.Duration (about 292 years), while fromNow reaches
// a JavaScript Date's ±275,000.
func ParseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(strings.TrimSpace(s)); err == nil {
		return d, nil
	}
	epoch := time.Unix(0, 0)
	t, err := FromNow(s, epoch)
	switch {
	case err != nil && bareNumber(s):
		return 0, fmt.Errorf("%q is not a duration: a number needs a unit, e.g. \"90s\", \"15m\", \"12h\", \"30 days\" or \"1 year\"", s)
	case err != nil || !strings.ContainsAny(s, "0123456789"):
		return 0, fmt.Errorf("%q is not a duration: want e.g. \"90s\", \"15m\", \"12h\", \"30 days\" or \"1 year\"", s)
	}
	if secs := t.Unix(); secs > maxDurationSeconds || secs < -maxDurationSeconds {
		return 0, fmt.Errorf("%q is too long for a duration (at most 292 years)", s)
	}
	return t.Sub(epoch), nil
}

// maxDurationSeconds is the largest whole number of seconds a
// time.Duration holds.
const maxDurationSeconds = int64(math.MaxInt64 / time.Second)

// bareNumber reports whether s is a number without a unit ("5", "-1.5"):
// the likely slip of a YAML file (`ackInterval: 5`), worth its own hint.
func bareNumber(s string) bool {
	s = strings.TrimLeft(strings.TrimSpace(s), "+-")
	return s != "" && strings.Trim(s, "0123456789.") == "" && strings.ContainsAny(s, "0123456789")
}

// Duration is a time.Duration read with ParseDuration: a configuration
// field of this type takes "90s" and "30 days" alike. It implements
// encoding.TextUnmarshaler, which gopkg.in/yaml.v3 uses for a scalar (and
// encoding/json for a string; a JSON number is refused), and
// encoding.TextMarshaler, which writes the Go form (time.Duration's
// String, "168h0m0s"), read back unchanged. The zero value is zero, so a
// field left out of a file still means "the default". Convert with
// time.Duration(d) where the value is used.
type Duration time.Duration

// String is time.Duration's, so that messages and logs print a Duration
// as they printed the time.Duration it replaces.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseDuration.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
