package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// permuteArgs moves the flags of the invoked command in front of its
// positional arguments, so that `tcauth client create my/client --scope x`
// works as it does in the official taskcluster CLI. urfave/cli/v2 stops
// reading flags at the first positional argument; after "--" nothing is
// moved.
func permuteArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	cmds := app.Commands
	var leaf *cli.Command
	i := 1
	for i < len(args) {
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(args[i]) {
				next = c
			}
		}
		if next == nil {
			break
		}
		leaf, cmds = next, next.Subcommands
		i++
	}
	if leaf == nil || len(leaf.Subcommands) > 0 {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range leaf.Flags {
		// altsrc wrappers embed the cli flag, so ask the flag itself
		// rather than match *cli.BoolFlag.
		takes := true
		if tv, ok := f.(interface{ TakesValue() bool }); ok {
			takes = tv.TakesValue()
		}
		for _, n := range f.Names() {
			takesValue[n] = takes
		}
	}
	out := append([]string{}, args[:i]...)
	var flags, positional []string
	for j := i; j < len(args); j++ {
		a := args[j]
		if a == "--" {
			positional = append(positional, args[j+1:]...)
			break
		}
		if len(a) > 1 && a[0] == '-' {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && j+1 < len(args) {
				j++
				flags = append(flags, args[j])
			}
			continue
		}
		positional = append(positional, a)
	}
	out = append(out, flags...)
	if len(positional) > 0 {
		// "--" keeps a positional that starts with "-" from being read as
		// a flag once the flags come first.
		out = append(out, "--")
	}
	return append(out, positional...)
}
