package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// scopesCommand is the offline scope toolbox: it needs no server and no
// credentials (explain --client and expand --remote excepted). Every command takes scopes the same two ways: its main scope
// list from the arguments or, when none is given, from standard input (one
// scope a line, or a JSON array with --json); a named set (--a, --b,
// --have, diff's A and B) as a JSON array or @FILE (one scope a line; @- is
// standard input). Output is one scope a line, or JSON with --json.
func scopesCommand() *cli.Command {
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "read and write JSON instead of one scope per line"}
	return &cli.Command{
		Name:  "scopes",
		Usage: "work with scopes and scope expressions offline",
		Subcommands: []*cli.Command{
			{
				Name:      "normalize",
				Usage:     "sort and normalize a scope set (drop duplicates and scopes implied by a star scope)",
				ArgsUsage: "[SCOPE...]",
				Flags:     []cli.Flag{jsonFlag},
				Action: func(c *cli.Context) error {
					in, err := scopeArgsOrStdin(c)
					if err != nil {
						return err
					}
					return writeScopes(c, scopeengine.NewScopeSet(in))
				},
			},
			{
				Name:  "intersect",
				Usage: "the scopes of A satisfied by B, then those of B satisfied by A (Taskcluster's scopeIntersection)",
				Flags: []cli.Flag{
					jsonFlag,
					&cli.StringFlag{Name: "a", Usage: "first scope set: a JSON array, or @FILE with one scope a line (@- = standard input)"},
					&cli.StringFlag{Name: "b", Usage: "second scope set, as --a"},
				},
				Action: func(c *cli.Context) error {
					if err := requireFlags(c, "a", "b"); err != nil {
						return err
					}
					a, err := readScopeSetArg(c.App.Reader, "--a", c.String("a"))
					if err != nil {
						return err
					}
					b, err := readScopeSetArg(c.App.Reader, "--b", c.String("b"))
					if err != nil {
						return err
					}
					return writeScopes(c, scopeengine.Intersection(a, b))
				},
			},
			{
				Name:      "satisfies",
				ArgsUsage: "[SCOPE...]",
				Usage: "check a scope expression against a scope set; prints the unsatisfied part " +
					"and exits 1 if anything is missing",
				Flags: []cli.Flag{
					jsonFlag,
					&cli.StringFlag{Name: "have", Usage: "the scopes held: a JSON array or @FILE (default: the arguments, or standard input as for normalize)"},
					&cli.StringFlag{Name: "expr", Usage: `the expression, JSON: "scope", {"AllOf": [...]} or {"AnyOf": [...]}`},
				},
				Action: satisfiesAction,
			},
			{
				Name:      "expand",
				Usage:     "expand a scope set through roles (assume:<roleId>), to a fixpoint: roles from --roles FILE, or the server's with --remote",
				ArgsUsage: "[SCOPE...]",
				Flags: []cli.Flag{
					jsonFlag,
					&cli.StringFlag{Name: "roles", Usage: "a JSON file holding a list of {roleId, scopes}"},
					&cli.BoolFlag{Name: "remote", Usage: "expand with the roles of the control plane at TASKCLUSTER_ROOT_URL instead of --roles"},
				},
				Action: expandAction,
			},
			{
				Name:      "diff",
				Usage:     "what each of two scope sets has that the other does not satisfy; exits 1 if they differ",
				ArgsUsage: "A B  (each a JSON array, or @FILE with one scope per line)",
				Flags:     []cli.Flag{jsonFlag},
				Action:    diffAction,
			},
			explainCommand(),
		},
	}
}

func satisfiesAction(c *cli.Context) error {
	if err := requireFlags(c, "expr"); err != nil {
		return err
	}
	var have []string
	var err error
	if c.IsSet("have") {
		have, err = readScopeSetArg(c.App.Reader, "--have", c.String("have"))
	} else {
		have, err = scopeArgsOrStdin(c)
	}
	if err != nil {
		return err
	}
	expr, err := scopeengine.ParseExpr([]byte(c.String("expr")))
	if err != nil {
		return badInput("--expr: %v", err)
	}
	missing, unsatisfied := expr.Unsatisfied(scopeengine.NewScopeSet(have))
	w := c.App.Writer
	if c.Bool("json") {
		if !unsatisfied {
			fmt.Fprintln(w, "null")
			return nil
		}
		out, err := protocol.Marshal(missing)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, string(out))
		return errNo
	}
	if !unsatisfied {
		return nil
	}
	fmt.Fprintln(w, missing.String())
	return errNo
}

// roleFileEntry accepts the shape of listRoles output too, so that
// `tcauth role list --json > roles.json` can be fed back in.
type roleFileEntry struct {
	RoleID *string   `json:"roleId"`
	Scopes *[]string `json:"scopes"`
}

func expandAction(c *cli.Context) error {
	if c.Bool("remote") {
		in, err := scopeArgsOrStdin(c)
		if err != nil {
			return err
		}
		out, err := expandRemote(c.Context, in)
		if err != nil {
			return err
		}
		return writeScopes(c, out)
	}
	if err := requireFlags(c, "roles"); err != nil {
		return err
	}
	path := c.String("roles")
	data, err := os.ReadFile(path)
	if err != nil {
		return badInput("--roles: %v", err)
	}
	var entries []roleFileEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		return badInput("--roles %s: not a JSON list of {roleId, scopes}: %v", path, err)
	}
	roles := make([]scopeengine.Role, 0, len(entries))
	for i, e := range entries {
		if e.RoleID == nil || *e.RoleID == "" || !scopeengine.ValidScope(*e.RoleID) {
			return badInput("--roles %s: entry %d: roleId missing or not printable ASCII", path, i)
		}
		if e.Scopes == nil {
			return badInput("--roles %s: role %q: scopes missing", path, *e.RoleID)
		}
		if err := checkScopes(fmt.Sprintf("--roles %s: role %q", path, *e.RoleID), *e.Scopes); err != nil {
			return err
		}
		roles = append(roles, scopeengine.Role{RoleID: *e.RoleID, Scopes: *e.Scopes})
	}
	resolver, err := scopeengine.NewResolver(roles)
	if err != nil {
		return badInput("--roles %s: %v", path, err)
	}
	in, err := scopeArgsOrStdin(c)
	if err != nil {
		return err
	}
	return writeScopes(c, resolver.Expand(in))
}

func diffAction(c *cli.Context) error {
	if c.NArg() != 2 {
		return badInput("diff takes two scope sets, A and B")
	}
	a, err := readScopeSetArg(c.App.Reader, "A", c.Args().Get(0))
	if err != nil {
		return err
	}
	b, err := readScopeSetArg(c.App.Reader, "B", c.Args().Get(1))
	if err != nil {
		return err
	}
	setA, setB := scopeengine.NewScopeSet(a), scopeengine.NewScopeSet(b)
	onlyA := notSatisfiedBy(setA, setB)
	onlyB := notSatisfiedBy(setB, setA)
	w := c.App.Writer
	if c.Bool("json") {
		if err := writeJSON(w, map[string][]string{"onlyA": onlyA, "onlyB": onlyB}); err != nil {
			return err
		}
	} else {
		for _, s := range onlyA {
			fmt.Fprintln(w, "- "+s)
		}
		for _, s := range onlyB {
			fmt.Fprintln(w, "+ "+s)
		}
	}
	if len(onlyA) > 0 || len(onlyB) > 0 {
		return errNo
	}
	return nil
}

// notSatisfiedBy lists the members of a that b does not satisfy: what a
// grants beyond b.
func notSatisfiedBy(a, b scopeengine.ScopeSet) []string {
	out := []string{}
	for _, s := range a {
		if !b.Satisfies(s) {
			out = append(out, s)
		}
	}
	return out
}

// readScopeSetArg reads a set given as a JSON array or as @FILE (one scope a
// line; @- is standard input).
func readScopeSetArg(stdin io.Reader, name, arg string) ([]string, error) {
	if path, ok := strings.CutPrefix(arg, "@"); ok {
		r := stdin
		if path != "-" {
			f, err := os.Open(path)
			if err != nil {
				return nil, badInput("%s: %v", name, err)
			}
			defer f.Close()
			r = f
		}
		return readScopeLines(name, r)
	}
	return parseScopeArray(name, arg)
}

func scopeArgsOrStdin(c *cli.Context) ([]string, error) {
	if c.NArg() > 0 {
		in := c.Args().Slice()
		return in, checkScopes("argument", in)
	}
	if c.Bool("json") {
		data, err := io.ReadAll(c.App.Reader)
		if err != nil {
			return nil, err
		}
		return parseScopeArray("standard input", string(data))
	}
	return readScopeLines("standard input", c.App.Reader)
}

func readScopeLines(name string, r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			continue // blank lines separate nothing; the empty scope needs JSON
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, badInput("%s: %v", name, err)
	}
	return out, checkScopes(name, out)
}

func parseScopeArray(name, text string) ([]string, error) {
	var out []string
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		return nil, badInput("%s: want a JSON array of scope strings: %v", name, err)
	}
	return out, checkScopes(name, out)
}

func checkScopes(name string, scopes []string) error {
	for _, s := range scopes {
		if !scopeengine.ValidScope(s) {
			return badInput("%s: invalid scope %q: scopes are printable ASCII (0x20-0x7E)", name, s)
		}
	}
	return nil
}

func writeScopes(c *cli.Context, scopes []string) error {
	w := c.App.Writer
	if c.Bool("json") {
		if scopes == nil {
			scopes = []string{}
		}
		out, err := protocol.Marshal(scopes)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(out))
		return err
	}
	for _, s := range scopes {
		if _, err := fmt.Fprintln(w, s); err != nil {
			return err
		}
	}
	return nil
}

// requireFlags reports missing flags as bad input (exit 2), where
// urfave/cli's own Required check would exit 1 like a negative answer.
func requireFlags(c *cli.Context, names ...string) error {
	for _, n := range names {
		if !c.IsSet(n) {
			return badInput("flag --%s is required (see --help)", n)
		}
	}
	return nil
}
