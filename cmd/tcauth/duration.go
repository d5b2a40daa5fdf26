package main

import (
	"os"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/tcauth/tcauth/protocol"
)

// durationValue is the flag.Value of a duration flag: a Go duration or a
// Taskcluster fromNow expression, as protocol.ParseDuration reads it (the
// same as the duration keys of the --…-config files).
type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := protocol.ParseDuration(s)
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
