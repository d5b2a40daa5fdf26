package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/controlplane"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// apiCommand is `tcauth api auth <method> [args]`, the official `taskcluster
// api auth …`: one subcommand per endpoint, path parameters as arguments in
// route order, query parameters as flags of their own name, a JSON body
// on standard input, and the answer as the server sent it (to -o FILE or
// standard output). The endpoints are the control plane's own route table
// (controlplane.APIMethods), so every endpoint the server has is reachable
// and none it lacks is offered.
func apiCommand() *cli.Command {
	var subs []*cli.Command
	for _, m := range controlplane.APIMethods() {
		if m.Internal {
			continue
		}
		subs = append(subs, apiMethodCommand(m))
	}
	return &cli.Command{
		Name:  "api",
		Usage: "call any endpoint of an API directly, like `taskcluster api` (TASKCLUSTER_ROOT_URL, _CLIENT_ID, _ACCESS_TOKEN)",
		Subcommands: []*cli.Command{{
			Name:        "auth",
			Usage:       "the auth service (every endpoint of /api/auth/v1)",
			Subcommands: subs,
		}},
	}
}

func apiMethodCommand(m controlplane.APIMethod) *cli.Command {
	input := "no"
	switch {
	case m.RawBody:
		input = "raw bytes on standard input"
	case m.Input:
		input = "yes, on standard input"
	}
	var argsUsage []string
	for _, a := range m.Args {
		argsUsage = append(argsUsage, "<"+a+">")
	}
	flags := []cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "-", Usage: "write the answer to this file (- = standard output)"}}
	for _, q := range m.Query {
		flags = append(flags, &cli.StringFlag{Name: q, Usage: "the '" + q + "' query-string parameter"})
	}
	return &cli.Command{
		Name:        m.Name,
		Usage:       m.Method + " " + m.Route,
		ArgsUsage:   strings.Join(argsUsage, " "),
		Description: fmt.Sprintf("Method:     %s\nPath:       %s\nJSON input: %s", m.Method, m.Route, input),
		Flags:       flags,
		Action:      func(c *cli.Context) error { return apiCall(c, m) },
	}
}

// apiRequest is what one `tcauth api auth` invocation sends.
type apiRequest struct {
	method, route string
	query         url.Values
	contentType   string
	body          []byte
}

// buildAPIRequest maps the command line onto the endpoint: arguments into
// the route (escaped as the official clients escape them), set query
// flags into the query string, standard input into the body.
func buildAPIRequest(c *cli.Context, m controlplane.APIMethod) (apiRequest, error) {
	if c.NArg() != len(m.Args) {
		want := "no arguments"
		if len(m.Args) > 0 {
			want = "<" + strings.Join(m.Args, "> <") + ">"
		}
		return apiRequest{}, badInput("api auth %s takes %s, got %d argument(s)", m.Name, want, c.NArg())
	}
	req := apiRequest{method: m.Method, route: m.Route, query: url.Values{}}
	for i, a := range m.Args {
		req.route = strings.Replace(req.route, "<"+a+">", tcclient.PathSegment(c.Args().Get(i)), 1)
	}
	for _, q := range m.Query {
		if c.IsSet(q) {
			req.query.Set(q, c.String(q))
		}
	}
	if !m.Input && !m.RawBody {
		return req, nil
	}
	body, err := io.ReadAll(c.App.Reader)
	if err != nil {
		return apiRequest{}, err
	}
	req.body, req.contentType = body, "application/octet-stream"
	if m.Input {
		if !json.Valid(body) {
			return apiRequest{}, badInput("api auth %s: standard input is not JSON (the request body must be a JSON object)", m.Name)
		}
		req.body, req.contentType = bytes.TrimSpace(body), "application/json"
	}
	return req, nil
}

func apiCall(c *cli.Context, m controlplane.APIMethod) error {
	req, err := buildAPIRequest(c, m)
	if err != nil {
		return err
	}
	client, err := apiClient()
	if err != nil {
		return err
	}
	resp, err := client.DoRaw(c.Context, req.method, req.route, req.query, req.contentType, req.body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	w := c.App.Writer
	if path := c.String("output"); path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return badInput("--output: %v", err)
		}
		defer f.Close()
		w = f
	}
	lw := &lastByteWriter{w: w}
	if _, err := io.Copy(lw, resp.Body); err != nil {
		return err
	}
	if lw.last != 0 && lw.last != '\n' && resp.Header.Get("Content-Type") != "application/octet-stream" {
		_, err = fmt.Fprintln(w)
	}
	return err
}
