package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/buildinfo"
)

// The small tools the official `taskcluster` CLI also has: version,
// from-now and shell completions.

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version and commit of this build",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print the /__version__ document instead"}},
		Action: func(c *cli.Context) error {
			in := buildinfo.Get()
			if c.Bool("json") {
				return writeJSON(c.App.Writer, in.Dockerflow())
			}
			_, err := fmt.Fprintln(c.App.Writer, in.String())
			return err
		},
	}
}

// fromNowCommand prints now shifted by a relative time, as `taskcluster
// from-now` does, but in the form the Taskcluster APIs use (UTC, ISO 8601
// with milliseconds, as taskcluster-client's fromNow().toJSON()), and it
// honours a leading "-" ("- 1 hour"; put "--" before it), which the
// official CLI parses but ignores.
func fromNowCommand() *cli.Command {
	return &cli.Command{
		Name:      "from-now",
		Usage:     `print the time DURATION from now ("1 year", "30 days", "2h30min"), as the APIs' expires fields want it`,
		ArgsUsage: "DURATION",
		Action: func(c *cli.Context) error {
			t, err := fromNow(strings.Join(c.Args().Slice(), " "), time.Now())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.App.Writer, isoTime(t))
			return err
		},
	}
}

func fromNow(expr string, now time.Time) (time.Time, error) {
	if strings.TrimSpace(expr) == "" {
		return time.Time{}, badInput(`from-now: give a duration, e.g. tcauth from-now "30 days"`)
	}
	t, err := protocol.FromNow(expr, now)
	if err != nil || !strings.ContainsAny(expr, "0123456789") {
		return time.Time{}, badInput(`from-now: %q is not a time expression: want e.g. "1 year", "30 days", "2h", "1d2h3min"`, expr)
	}
	return t, nil
}

// completionCommand prints a completion script. Each asks the binary
// itself (urfave/cli's --generate-bash-completion) at every <TAB>, so the
// completions match the installed version. (urfave/cli v2's static fish
// generator recurses forever on nested help commands, so fish asks too.)
func completionCommand() *cli.Command {
	script := func(name, text string) *cli.Command {
		return &cli.Command{
			Name:  name,
			Usage: "print the " + name + " completion script",
			Action: func(c *cli.Context) error {
				_, err := fmt.Fprint(c.App.Writer, text)
				return err
			},
		}
	}
	return &cli.Command{
		Name: "completion",
		Usage: "print a shell completion script: " +
			"source <(tcauth completion bash), source <(tcauth completion zsh), tcauth completion fish | source",
		Subcommands: []*cli.Command{
			script("bash", bashCompletion),
			script("zsh", zshCompletion),
			script("fish", fishCompletion),
		},
	}
}

// The scripts pass the words typed so far back to tcauth with
// --generate-bash-completion and offer what it prints.
const bashCompletion = `# bash completion for tcauth: source <(tcauth completion bash)
_tcauth_complete() {
  local cur="${COMP_WORDS[COMP_CWORD]}" opts
  if [[ "$cur" == -* ]]; then
    opts=$("${COMP_WORDS[@]:0:COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${COMP_WORDS[@]:0:COMP_CWORD}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _tcauth_complete tcauth
`

const zshCompletion = `#compdef tcauth
# zsh completion for tcauth: source <(tcauth completion zsh)
_tcauth_complete() {
  local -a opts
  local cur="${words[CURRENT]}"
  if [[ "$cur" == -* ]]; then
    opts=("${(@f)$(_CLI_ZSH_AUTOCOMPLETE_HACK=1 ${words[1,CURRENT-1]} "$cur" --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(_CLI_ZSH_AUTOCOMPLETE_HACK=1 ${words[1,CURRENT-1]} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ -n "${opts[1]}" ]]; then
    _describe 'tcauth' opts
  else
    _files
  fi
}
compdef _tcauth_complete tcauth
`

const fishCompletion = `# fish completion for tcauth: tcauth completion fish | source
function __tcauth_complete
    set -l args (commandline -opc)
    set -l cur (commandline -ct)
    if string match -q -- '-*' $cur
        $args $cur --generate-bash-completion 2>/dev/null
    else
        $args --generate-bash-completion 2>/dev/null
    end
end
complete -c tcauth -f -a '(__tcauth_complete)'
`
