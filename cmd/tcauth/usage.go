package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/protocol/tcclient"
)

// prepareArgs turns the command line into what urfave/cli/v2 parses as a
// user means it: `tcauth help client create` becomes `tcauth client create
// --help` (urfave's help command only looks at its first argument), and
// flags after positional arguments are moved in front (permuteArgs).
func prepareArgs(app *cli.App, args []string) []string {
	if len(args) > 2 && args[1] == "help" {
		args = append(append([]string{args[0]}, args[2:]...), "--help")
	}
	// Shell completion (completionCommand's scripts) wants the flag last,
	// where urfave/cli looks for it.
	if len(args) > 1 && args[len(args)-1] == "--generate-bash-completion" {
		return args
	}
	return permuteArgs(app, args)
}

// strictUsage makes every usage mistake exit 2 with one line: an unknown
// flag or a bad flag value (urfave/cli prints the whole help and exits 1),
// and an unknown command or subcommand (urfave exits 3 with "No help
// topic"). It is applied to the whole command tree once it is built.
func strictUsage(app *cli.App) {
	app.OnUsageError = usageError("tcauth")
	app.Action = unknownCommand("tcauth")
	for _, c := range app.Commands {
		strictCommand(c, "tcauth "+c.Name)
	}
}

func strictCommand(c *cli.Command, path string) {
	c.OnUsageError = usageError(path)
	if len(c.Subcommands) > 0 && c.Action == nil {
		c.Action = unknownCommand(path)
	}
	for _, sub := range c.Subcommands {
		strictCommand(sub, path+" "+sub.Name)
	}
}

func usageError(path string) cli.OnUsageErrorFunc {
	return func(_ *cli.Context, err error, _ bool) error {
		msg := strings.Replace(err.Error(), "flag provided but not defined: -", "unknown flag --", 1)
		msg = strings.Replace(msg, " for flag -", " for flag --", 1)
		return badInput("%s%s (see '%s --help')", commandPrefix(path), msg, path)
	}
}

// unknownCommand is the action of a command that only groups others: with
// no argument it shows the help, otherwise the argument is not one of its
// subcommands.
func unknownCommand(path string) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() == 0 {
			if path == "tcauth" {
				return cli.ShowAppHelp(c)
			}
			return cli.ShowSubcommandHelp(c)
		}
		return badInput("%sunknown command %q (see '%s --help')", commandPrefix(path), c.Args().First(), path)
	}
}

// commandPrefix is "client get: " for "tcauth client get"; main already
// starts the line with "tcauth:".
func commandPrefix(path string) string {
	if rest, ok := strings.CutPrefix(path, "tcauth "); ok {
		return rest + ": "
	}
	return ""
}

// describeError is the one line main prints for a failed command: the
// server's refusal with a hint of what to do, or which URL could not be
// reached.
func describeError(err error) string {
	// Several problems at once (a configuration check): one per line.
	if lines := problemLines(err); len(lines) > 1 {
		return fmt.Sprintf("%d problems:\n  %s", len(lines), strings.Join(lines, "\n  "))
	}
	var apiErr *tcclient.Error
	var urlErr *url.Error
	switch {
	case errors.As(err, &apiErr):
		return oneLine(apiErr.Error()) + refusalHint(apiErr)
	case errors.As(err, &urlErr):
		return unreachable(urlErr)
	}
	return oneLine(err.Error())
}

// refusalHint says what to do about the common refusals.
func refusalHint(e *tcclient.Error) string {
	switch e.Code {
	case "AuthenticationFailed":
		return " — check TASKCLUSTER_CLIENT_ID, TASKCLUSTER_ACCESS_TOKEN (and TASKCLUSTER_CERTIFICATE for temporary credentials)"
	case "InsufficientScopes":
		return " — ask for the missing scopes, or use a client that has them"
	}
	return ""
}

// unreachable names the server that did not answer and the variable it
// came from; the rest of Go's error repeats the whole URL.
func unreachable(e *url.Error) string {
	base := e.URL
	if u, err := url.Parse(e.URL); err == nil && u.Host != "" {
		base = u.Scheme + "://" + u.Host
	}
	cause := e.Err
	var op *net.OpError
	if errors.As(cause, &op) && op.Err != nil {
		cause = op.Err
	}
	var sys *os.SyscallError
	if errors.As(cause, &sys) {
		cause = sys.Err // "connection refused", not "connect: connection refused"
	}
	return fmt.Sprintf("cannot reach %s (%s %s): %s — is the server running, and is TASKCLUSTER_ROOT_URL (or the URL given) right?",
		base, e.Op, e.URL, oneLine(cause.Error()))
}

// oneLine folds a multi-line message (the server's InsufficientScopes text
// quotes scope expressions in ``` blocks) into one line.
func oneLine(s string) string {
	var parts []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line == "```" {
			continue
		}
		parts = append(parts, line)
	}
	return strings.Join(parts, " ")
}
