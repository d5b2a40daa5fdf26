package main

import (
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/tcauth/tcauth/protocol"
)

// parseDuration accepts a Go duration ("90s", "1h30m") or a relative time
// in Taskcluster's fromNow syntax ("30 days", "1 year", "2h", "1d2h3min"; a
// month is 30 days and a year 365, as taskcluster-client counts them), so
// that every duration flag takes what `taskcluster from-now` takes. An
// expression must name at least one amount: fromNow reads "" as now.
func parseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(strings.TrimSpace(s)); err == nil {
		return d, nil
	}
	now := time.Unix(0, 0)
	t, err := protocol.FromNow(s, now)
	if err != nil || !strings.ContainsAny(s, "0123456789") {
		return 0, fmt.Errorf("%q is not a duration: want e.g. \"90s\", \"15m\", \"12h\", \"30 days\" or \"1 year\"", s)
	}
	// fromNow reaches a JavaScript Date's range (±275,000 years); a
	// time.Duration ends at 292 years.
	if secs := t.Unix(); secs > maxDurationSeconds || secs < -maxDurationSeconds {
		return 0, fmt.Errorf("%q is too long for a duration (at most 292 years)", s)
	}
	return t.Sub(now), nil
}

const maxDurationSeconds = int64(math.MaxInt64 / time.Second)

// durationValue is the flag.Value of a duration flag.
type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) String() string { return time.Duration(*d).String() }

// durationFlag is a duration flag that also takes fromNow expressions.
func durationFlag(name string, value time.Duration, usage string, envVars ...string) *cli.GenericFlag {
	v := durationValue(value)
	return &cli.GenericFlag{Name: name, Value: &v, Usage: usage, EnvVars: envVars, DefaultText: value.String()}
}

// flagDuration reads a flag made by durationFlag.
func flagDuration(c *cli.Context, name string) time.Duration {
	if v, ok := c.Generic(name).(*durationValue); ok {
		return time.Duration(*v)
	}
	return 0
}

// configDurationFlag is durationFlag for commands with a --config YAML
// file. altsrc's own generic flag insists on a cli.Generic in the file;
// this one reads the duration as the string it is in YAML ("5m", "30 days").
type configDurationFlag struct{ *cli.GenericFlag }

func configDuration(name string, value time.Duration, usage string, envVars ...string) configDurationFlag {
	return configDurationFlag{durationFlag(name, value, usage, envVars...)}
}

func (f configDurationFlag) ApplyInputSourceValue(c *cli.Context, isc altsrc.InputSourceContext) error {
	if c.IsSet(f.Name) {
		return nil
	}
	for _, e := range f.EnvVars {
		if _, ok := os.LookupEnv(e); ok {
			return nil
		}
	}
	s, err := isc.String(f.Name)
	if err != nil || s == "" {
		return err
	}
	if err := c.Set(f.Name, s); err != nil {
		return badInput("--config: %s: %v", f.Name, err)
	}
	return nil
}
