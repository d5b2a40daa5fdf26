package protocol

import (
	"errors"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fromNowClock is the clock of the reference vectors (taskcluster-client's
// fromNow run at 2023-11-14T22:13:20.000Z).
var fromNowClock = time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)

func TestFromNowVectors(t *testing.T) {
	tests := []struct{ in, want string }{
		// the reference vectors
		{"3h", "2023-11-15T01:13:20Z"},
		{"1d", "2023-11-15T22:13:20Z"},
		{"1 day 2 hours 3 min", "2023-11-16T00:16:20Z"},
		{"1d2h3min", "2023-11-16T00:16:20Z"},
		{"- 15 min", "2023-11-14T21:58:20Z"},
		{"30 days", "2023-12-14T22:13:20Z"},
		{"1 year", "2024-11-13T22:13:20Z"},
		{"2mo", "2024-01-13T22:13:20Z"},
		{"1w", "2023-11-21T22:13:20Z"},
		{"90s", "2023-11-14T22:14:50Z"},
		// every spelling, case and sign
		{"1 y", "2024-11-13T22:13:20Z"}, {"1yr", "2024-11-13T22:13:20Z"}, {"2 YEARS", "2025-11-13T22:13:20Z"},
		{"1 Month", "2023-12-14T22:13:20Z"}, {"1months", "2023-12-14T22:13:20Z"},
		{"1 wk", "2023-11-21T22:13:20Z"}, {"1 week", "2023-11-21T22:13:20Z"}, {"2 Weeks", "2023-11-28T22:13:20Z"},
		{"1 day", "2023-11-15T22:13:20Z"}, {"2 DAYS", "2023-11-16T22:13:20Z"},
		{"1 hr", "2023-11-14T23:13:20Z"}, {"1 hour", "2023-11-14T23:13:20Z"}, {"2hours", "2023-11-15T00:13:20Z"},
		{"1m", "2023-11-14T22:14:20Z"}, {"1 minute", "2023-11-14T22:14:20Z"}, {"2 minutes", "2023-11-14T22:15:20Z"},
		{"1 sec", "2023-11-14T22:13:21Z"}, {"1 second", "2023-11-14T22:13:21Z"}, {"2 SECONDS", "2023-11-14T22:13:22Z"},
		{"+1h", "2023-11-14T23:13:20Z"}, {"-1d 1h", "2023-11-13T21:13:20Z"}, {" \t1 y 1 mo 1 w 1 d 1 h 1 m 1 s \n", "2024-12-21T23:14:21Z"},
		{"007 d", "2023-11-21T22:13:20Z"}, {"0s", "2023-11-14T22:13:20Z"},
		{"1000 years", "3023-03-17T22:13:20Z"}, // beyond time.Duration's 292 years
		// everything is optional: the reference answers now
		{"", "2023-11-14T22:13:20Z"}, {"-", "2023-11-14T22:13:20Z"}, {"  ", "2023-11-14T22:13:20Z"},
		// JavaScript whitespace
		{"1\u00a0d", "2023-11-15T22:13:20Z"}, {"\ufeff1d", "2023-11-15T22:13:20Z"}, {"1d\u3000", "2023-11-15T22:13:20Z"},
	}
	for _, tc := range tests {
		got, err := FromNow(tc.in, fromNowClock)
		if err != nil || got.UTC().Format(time.RFC3339) != tc.want {
			t.Errorf("FromNow(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestFromNowErrors(t *testing.T) {
	for _, in := range []string{
		"3 fortnights", "soon", "1", "d", "1 d 1 d", "1h 1d", "1 mo 1 y", "1d,2h", "1 dd", "1 yrs", "1 wks", "1 hrs",
		"1.5h", "--1h", "- -1h", "1h -", "1 d x", "1\u0085d", // U+0085 is \s for Go, not for JavaScript
		"1 \u212aelvin", "1 \u017fec", // non-ASCII letters that fold to ASCII under Unicode rules
		"1 d\xff", "99999999999999999999 years", "300000 years", "-300000 years", "1e3 s",
	} {
		_, err := FromNow(in, fromNowClock)
		var te *TimeExpressionError
		if !errors.As(err, &te) || !errors.Is(err, ErrTimeExpression) {
			t.Errorf("FromNow(%q): want a TimeExpressionError, got %v", in, err)
			continue
		}
		if want := "String: '" + in + "' isn't a time expression"; err.Error() != want {
			t.Errorf("FromNow(%q): message %q, want %q", in, err, want)
		}
	}
}

func TestFromNowKeepsSubSecondsAndZone(t *testing.T) {
	zone := time.FixedZone("x", 3600)
	now := time.Date(2024, 2, 28, 23, 30, 0, 123456789, zone)
	got, err := FromNow("1 day", now)
	if err != nil || !got.Equal(now.Add(24*time.Hour)) || got.Location() != zone {
		t.Fatalf("got %v, %v", got, err)
	}
}

// fromNowOracle is the reference's regular expression in RE2 syntax, with
// the case folding spelled out (JavaScript folds ASCII only without the u
// flag, Go's (?i) folds Unicode) and JavaScript's \s written out.
var fromNowOracle = func() *regexp.Regexp {
	ws := `[\t\n\v\f\r \x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}\x{feff}]*`
	alt := func(words ...string) string {
		var parts []string
		for _, w := range words {
			var b strings.Builder
			for _, c := range w {
				b.WriteString("[" + string(c) + strings.ToUpper(string(c)) + "]")
			}
			parts = append(parts, b.String())
		}
		return strings.Join(parts, "|")
	}
	expr := `^(` + ws + `(-|\+))?`
	for _, words := range [][]string{
		{"y", "year", "years", "yr"}, {"months", "month", "mo"}, {"weeks", "week", "wk", "w"}, {"days", "day", "d"},
		{"hours", "hour", "hr", "h"}, {"minutes", "minute", "min", "m"}, {"seconds", "second", "sec", "s"},
	} {
		expr += `(` + ws + `([0-9]+)` + ws + `(` + alt(words...) + `))?`
	}
	return regexp.MustCompile(expr + ws + `$`)
}()

// oracleFromNow evaluates a match of fromNowOracle the reference's way,
// in arbitrary precision: ok is false when the reference refuses s or
// yields an Invalid Date.
func oracleFromNow(s string, now time.Time) (time.Time, bool) {
	m := fromNowOracle.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false
	}
	unit := []int64{365 * 86400, 30 * 86400, 7 * 86400, 86400, 3600, 60, 1}
	total := new(big.Int)
	for i := range 7 {
		n, _ := new(big.Int).SetString("0"+m[4+3*i], 10)
		total.Add(total, n.Mul(n, big.NewInt(unit[i])))
	}
	if m[2] == "-" {
		total.Neg(total)
	}
	secs := total.Add(total, big.NewInt(now.Unix()))
	ms := new(big.Int).Mul(secs, big.NewInt(1000))
	if ms.CmpAbs(big.NewInt(jsDateLimitMs)) > 0 {
		return time.Time{}, false
	}
	return time.Unix(secs.Int64(), 0), true
}

// FuzzFromNow: FromNow never panics, accepts exactly the strings the
// reference's regular expression accepts (within a JavaScript Date's
// range), computes the same time, and words its error as the reference.
func FuzzFromNow(f *testing.F) {
	for _, s := range []string{"3h", "1 day 2 hours 3 min", "- 15 min", "2mo", "3 fortnights", "", "-", "1\u00a0d",
		"1 \u212aelvin", "1 y 1 mo 1 w 1 d 1 h 1 m 1 s", "99999999999999999999 s", "1mo1m", "1m1mo", "8640000000000 s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := FromNow(s, fromNowClock)
		want, ok := oracleFromNow(s, fromNowClock)
		switch {
		case !ok && err == nil:
			t.Fatalf("FromNow(%q) = %v; the reference refuses it", s, got)
		case ok && err != nil:
			t.Fatalf("FromNow(%q): %v; the reference gives %v", s, err, want)
		case ok && !got.Equal(want):
			t.Fatalf("FromNow(%q) = %v, want %v", s, got, want)
		case err != nil && err.Error() != "String: '"+s+"' isn't a time expression":
			t.Fatalf("message %q", err)
		}
	})
}
