package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/controlplane"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
	"github.com/tcauth/tcauth/scopeengine"
	"github.com/tcauth/tcauth/sidecar"
)

// explainCommand is `tcauth scopes explain METHOD URL`: which scopes a
// call needs (Taskcluster #5300). The route tables are compiled in (the
// auth API's) or read from --routes, so explaining needs no server;
// --client reads that client's expanded scopes with getClient, which
// Taskcluster itself serves too.
func explainCommand() *cli.Command {
	return &cli.Command{
		Name:      "explain",
		Usage:     "which scopes a call needs: the endpoint, its scope template and the expression filled in; with --client, what that client lacks (exits 1 then)",
		ArgsUsage: "METHOD URL  (URL absolute, from the root URL as /api/auth/v1/clients/x, or below the API as /clients/x)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the explanation as JSON"},
			&cli.StringFlag{Name: "routes", Usage: "explain a route of this sidecar routes file instead of the auth API"},
			&cli.StringFlag{Name: "body", Usage: "the request's JSON body, for scopes that depend on it: JSON, @FILE, or - (standard input)"},
			&cli.StringFlag{Name: "client", Usage: "check the explanation against this client's expanded scopes (needs auth:get-client:<ID> in TASKCLUSTER_* credentials)"},
		},
		Action: explainAction,
	}
}

func explainAction(c *cli.Context) error {
	if c.NArg() != 2 {
		return badInput("explain takes METHOD and URL, e.g. tcauth scopes explain GET /api/auth/v1/clients/my-client")
	}
	method, target := strings.ToUpper(c.Args().Get(0)), c.Args().Get(1)
	body, err := readExplainBody(c.App.Reader, c.String("body"), c.IsSet("body"))
	if err != nil {
		return err
	}
	var e *controlplane.Explanation
	if c.IsSet("routes") {
		e, err = explainSidecarRoute(c.String("routes"), method, target, body)
	} else {
		e, err = controlplane.Explain(method, target, controlplane.ExplainOptions{Body: body})
		if errors.Is(err, controlplane.ErrNoEndpoint) || errors.Is(err, controlplane.ErrBadExplainInput) {
			err = badInput("%v", err)
		}
	}
	if err != nil {
		return err
	}
	if id := c.String("client"); id != "" {
		have, err := clientExpandedScopes(c, id)
		if err != nil {
			return err
		}
		e.Check(id, scopeengine.NewScopeSet(have))
	}
	if c.Bool("json") {
		err = writeJSON(c.App.Writer, e)
	} else {
		err = printExplanation(c.App.Writer, e)
	}
	if err == nil && e.Satisfied != nil && !*e.Satisfied {
		return errNo
	}
	return err
}

// maxExplainBody bounds --body as the API endpoint does.
const maxExplainBody = 64 << 10

func readExplainBody(stdin io.Reader, arg string, set bool) (json.RawMessage, error) {
	if !set {
		return nil, nil
	}
	data := []byte(arg)
	if arg == "-" || arg == "@-" {
		b, err := io.ReadAll(io.LimitReader(stdin, maxExplainBody+1))
		if err != nil {
			return nil, badInput("--body: %v", err)
		}
		data = b
	} else if path, ok := strings.CutPrefix(arg, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, badInput("--body: %v", err)
		}
		data = b
	}
	if len(data) > maxExplainBody {
		return nil, badInput("--body: more than %d bytes", maxExplainBody)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		return nil, badInput("--body: want a JSON object (the request body)")
	}
	return data, nil
}

// explainSidecarRoute explains a route of a sidecar routes file in the
// auth API's terms.
func explainSidecarRoute(file, method, target string, body []byte) (*controlplane.Explanation, error) {
	pol, err := sidecar.LoadPolicy(file)
	if err != nil {
		return nil, badInput("--routes: %v", err)
	}
	rx, err := pol.Explain(method, target, body)
	if err != nil {
		return nil, badInput("%v", err)
	}
	r := rx.Route
	e := &controlplane.Explanation{Endpoint: r.Name, Method: strings.Join(r.Methods, ","), Route: r.Pattern, Parameters: []controlplane.ExplainParam{}}
	if r.Methods == nil {
		e.Method = "*"
	}
	if rx.Default {
		e.Notes = append(e.Notes, "no route matches: the policy's default applies")
	}
	if r.Public {
		e.Needs = controlplane.NeedsNone
		e.Notes = append(e.Notes, "public route: the sidecar verifies nothing and the service sees an anonymous caller")
		return e, nil
	}
	if r.Authenticated {
		e.Notes = append(e.Notes, "authenticated route: anonymous callers are refused even if the scopes would allow them")
	}
	t := r.Template
	e.Template = &t
	for _, name := range t.Params() {
		e.Parameters = append(e.Parameters, controlplane.ExplainParam{Name: name, From: rx.Sources[name], Value: rx.Params[name]})
	}
	if err := e.Fill(t, rx.Params); err != nil {
		return nil, badInput("%v", err)
	}
	return e, nil
}

// clientExpandedScopes reads a client's expanded scopes (getClient).
func clientExpandedScopes(c *cli.Context, id string) ([]string, error) {
	client, err := apiClient()
	if err != nil {
		return nil, err
	}
	var out struct {
		ExpandedScopes []string `json:"expandedScopes"`
	}
	if err := client.Do(c.Context, http.MethodGet, "/clients/"+tcclient.PathSegment(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return out.ExpandedScopes, nil
}

func printExplanation(w io.Writer, e *controlplane.Explanation) error {
	var b strings.Builder
	fmt.Fprintf(&b, "endpoint:  %s (%s %s)\n", e.Endpoint, e.Method, e.Route)
	if e.Template != nil {
		t, _ := e.Template.MarshalJSON()
		fmt.Fprintf(&b, "template:  %s\n", t)
	}
	for _, p := range e.Parameters {
		v := "(not given)"
		if p.Value != nil {
			raw, _ := protocol.Marshal(p.Value)
			v = string(raw)
		}
		fmt.Fprintf(&b, "  <%s> from the %s: %s", p.Name, p.From, v)
		if p.How != "" {
			fmt.Fprintf(&b, "  — %s", p.How)
		}
		b.WriteByte('\n')
	}
	switch e.Needs {
	case controlplane.NeedsNone:
		b.WriteString("requires:  no scopes\n")
	case controlplane.NeedsBody:
		fmt.Fprintf(&b, "requires:  cannot tell without %s (give --body)\n", strings.Join(e.Unknown, ", "))
	default:
		fmt.Fprintf(&b, "requires:  %s\n", indentRest(e.Expression.String()))
	}
	if len(e.Partial) > 0 {
		fmt.Fprintf(&b, "           at least; more from %s, which the call does not give (--body)\n", strings.Join(e.Partial, ", "))
	}
	for _, n := range e.Notes {
		fmt.Fprintf(&b, "note:      %s\n", n)
	}
	if e.ClientID != "" {
		printCheck(&b, e)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func printCheck(b *strings.Builder, e *controlplane.Explanation) {
	switch {
	case e.Satisfied == nil:
		fmt.Fprintf(b, "client:    %s: cannot tell without the body\n", e.ClientID)
	case *e.Satisfied:
		fmt.Fprintf(b, "client:    %s has these scopes\n", e.ClientID)
	default:
		fmt.Fprintf(b, "client:    %s lacks %s\n", e.ClientID, indentRest(e.Missing.String()))
		if len(e.MissingAlternatives) > 0 {
			b.WriteString("grant one of:\n")
			for _, set := range slices.Clone(e.MissingAlternatives) {
				fmt.Fprintf(b, "  - %s\n", strings.Join(set, "  "))
			}
		}
	}
}

// indentRest aligns the lines after the first of a multi-line value with
// the value column.
func indentRest(s string) string {
	return strings.ReplaceAll(s, "\n", "\n           ")
}
