package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// The admin commands call a running control plane with the standard
// Taskcluster variables (TASKCLUSTER_ROOT_URL, TASKCLUSTER_CLIENT_ID,
// TASKCLUSTER_ACCESS_TOKEN, TASKCLUSTER_CERTIFICATE), like the official
// `taskcluster` CLI. Answers are printed as the server's JSON.

func apiClient() (*tcclient.Client, error) {
	c, err := tcclient.FromEnv()
	if err != nil {
		return nil, badInput("%v: export it (e.g. TASKCLUSTER_ROOT_URL=https://tc.example.com), and TASKCLUSTER_CLIENT_ID / TASKCLUSTER_ACCESS_TOKEN for authenticated calls", err)
	}
	// Signing with an empty token would only earn a "Bad mac" refusal.
	if c.Credentials != nil && c.Credentials.AccessToken == "" {
		return nil, errNoAccessToken
	}
	return c, nil
}

// errNoAccessToken names the missing variable, where the server would
// answer an empty token with "Bad mac".
var errNoAccessToken = &exitError{code: 2, err: errors.New(
	"TASKCLUSTER_CLIENT_ID is set but TASKCLUSTER_ACCESS_TOKEN is not: export the client's access token (or unset TASKCLUSTER_CLIENT_ID for anonymous calls)")}

// call runs one API call and prints its JSON answer (nothing for 204).
func call(c *cli.Context, method, route string, query url.Values, body any) error {
	client, err := apiClient()
	if err != nil {
		return err
	}
	var out json.RawMessage
	if err := client.Do(c.Context, method, route, query, body, &out); err != nil {
		return err
	}
	return printJSON(c.App.Writer, out)
}

// printJSON re-indents an answer (numbers kept as sent) and prints it
// without HTML escapes (writeJSON).
func printJSON(w io.Writer, raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	return writeJSON(w, v)
}

// writeJSON prints v as two-space-indented JSON without HTML escaping, so
// that a scope like notes:write:<..>/* is printed as it is.
func writeJSON(w io.Writer, v any) error {
	out, err := protocol.MarshalIndent(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(out))
	return err
}

func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", badInput("expected exactly one %s", what)
	}
	return c.Args().First(), nil
}

// parseExpires accepts an ISO 8601 time or a relative time in
// Taskcluster's fromNow syntax ("1 year", "30 days", "2h", "- 1 hour",
// "1d2h3min"; a month is 30 days and a year 365, as taskcluster-client
// counts them). fromNow takes "" as now; an --expires of now is a mistake,
// so an expression must name at least one amount.
func parseExpires(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	t, err := protocol.FromNow(s, now)
	if err != nil || !strings.ContainsAny(s, "0123456789") {
		return time.Time{}, badInput("--expires %q: want an ISO 8601 time or a relative time like \"1 year\", \"30 days\", \"12h\"", s)
	}
	return t, nil
}

func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func clientCommand() *cli.Command {
	idAction := func(method, suffix string) cli.ActionFunc {
		return func(c *cli.Context) error {
			id, err := oneArg(c, "clientId")
			if err != nil {
				return err
			}
			return call(c, method, "/clients/"+tcclient.PathSegment(id)+suffix, nil, nil)
		}
	}
	clientFlags := func(create bool) []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: "description", Usage: "what the client is for"},
			&cli.StringFlag{Name: "expires", Usage: `ISO 8601 time or relative ("1 year", "30 days")`, Value: map[bool]string{true: "1 year"}[create]},
			&cli.StringSliceFlag{Name: "scope", Usage: "a scope (repeat the flag for more)"},
			&cli.BoolFlag{Name: "delete-on-expiration", Usage: "delete the client once it expires"},
		}
	}
	return &cli.Command{
		Name:  "client",
		Usage: "manage clients on a control plane (TASKCLUSTER_ROOT_URL, _CLIENT_ID, _ACCESS_TOKEN)",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list clients (all pages)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "prefix", Usage: "only clientIds starting with this"},
					&cli.BoolFlag{Name: "json", Usage: "print full client objects as JSON"},
				},
				Action: listClientsAction,
			},
			{Name: "get", Usage: "show one client", ArgsUsage: "CLIENT_ID", Action: idAction(http.MethodGet, "")},
			{
				Name: "create", Usage: "create a client; prints its accessToken once", ArgsUsage: "CLIENT_ID",
				Flags: clientFlags(true),
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "clientId")
					if err != nil {
						return err
					}
					if !c.IsSet("description") {
						return badInput("flag --description is required")
					}
					expires, err := parseExpires(c.String("expires"), time.Now())
					if err != nil {
						return err
					}
					scopes := c.StringSlice("scope")
					if scopes == nil {
						scopes = []string{}
					}
					return call(c, http.MethodPut, "/clients/"+tcclient.PathSegment(id), nil, map[string]any{
						"description": c.String("description"), "expires": isoTime(expires),
						"scopes": scopes, "deleteOnExpiration": c.Bool("delete-on-expiration"),
					})
				},
			},
			{
				Name: "update", Usage: "change a client's description, expiry or scopes (unset flags keep their value)", ArgsUsage: "CLIENT_ID",
				Flags:  clientFlags(false),
				Action: updateClientAction,
			},
			{Name: "reset", Usage: "reset a client's accessToken; prints the new one", ArgsUsage: "CLIENT_ID", Action: idAction(http.MethodPost, "/reset")},
			{Name: "enable", Usage: "enable a client", ArgsUsage: "CLIENT_ID", Action: idAction(http.MethodPost, "/enable")},
			{Name: "disable", Usage: "disable a client (it can no longer authenticate)", ArgsUsage: "CLIENT_ID", Action: idAction(http.MethodPost, "/disable")},
			{Name: "delete", Usage: "delete a client", ArgsUsage: "CLIENT_ID", Action: idAction(http.MethodDelete, "")},
		},
	}
}

func listClientsAction(c *cli.Context) error {
	client, err := apiClient()
	if err != nil {
		return err
	}
	var all []json.RawMessage
	var ids []string
	query := url.Values{}
	if p := c.String("prefix"); p != "" {
		query.Set("prefix", p)
	}
	for {
		var page struct {
			Clients           []json.RawMessage `json:"clients"`
			ContinuationToken string            `json:"continuationToken"`
		}
		if err := client.Do(c.Context, http.MethodGet, "/clients/", query, nil, &page); err != nil {
			return err
		}
		for _, raw := range page.Clients {
			var head struct {
				ClientID string `json:"clientId"`
			}
			if err := json.Unmarshal(raw, &head); err != nil {
				return err
			}
			ids = append(ids, head.ClientID)
			all = append(all, raw)
		}
		if page.ContinuationToken == "" {
			break
		}
		query.Set("continuationToken", page.ContinuationToken)
	}
	if c.Bool("json") {
		if all == nil {
			all = []json.RawMessage{}
		}
		raw, err := json.Marshal(all)
		if err != nil {
			return err
		}
		return printJSON(c.App.Writer, raw)
	}
	for _, id := range ids {
		fmt.Fprintln(c.App.Writer, id)
	}
	return nil
}

func updateClientAction(c *cli.Context) error {
	id, err := oneArg(c, "clientId")
	if err != nil {
		return err
	}
	client, err := apiClient()
	if err != nil {
		return err
	}
	route := "/clients/" + tcclient.PathSegment(id)
	var cur struct {
		Description        string   `json:"description"`
		Expires            string   `json:"expires"`
		Scopes             []string `json:"scopes"`
		DeleteOnExpiration bool     `json:"deleteOnExpiration"`
	}
	if err := client.Do(c.Context, http.MethodGet, route, nil, nil, &cur); err != nil {
		return err
	}
	body := map[string]any{"description": cur.Description, "expires": cur.Expires, "scopes": cur.Scopes,
		"deleteOnExpiration": cur.DeleteOnExpiration}
	if c.IsSet("description") {
		body["description"] = c.String("description")
	}
	if c.IsSet("expires") {
		t, err := parseExpires(c.String("expires"), time.Now())
		if err != nil {
			return err
		}
		body["expires"] = isoTime(t)
	}
	if c.IsSet("scope") {
		body["scopes"] = c.StringSlice("scope")
	}
	if c.IsSet("delete-on-expiration") {
		body["deleteOnExpiration"] = c.Bool("delete-on-expiration")
	}
	return call(c, http.MethodPost, route, nil, body)
}

func roleCommand() *cli.Command {
	idAction := func(method string) cli.ActionFunc {
		return func(c *cli.Context) error {
			id, err := oneArg(c, "roleId")
			if err != nil {
				return err
			}
			return call(c, method, "/roles/"+tcclient.PathSegment(id), nil, nil)
		}
	}
	writeAction := func(method string) cli.ActionFunc {
		return func(c *cli.Context) error {
			id, err := oneArg(c, "roleId")
			if err != nil {
				return err
			}
			if !c.IsSet("description") {
				return badInput("flag --description is required")
			}
			scopes := c.StringSlice("scope")
			if scopes == nil {
				scopes = []string{}
			}
			return call(c, method, "/roles/"+tcclient.PathSegment(id), nil,
				map[string]any{"description": c.String("description"), "scopes": scopes})
		}
	}
	flags := []cli.Flag{
		&cli.StringFlag{Name: "description", Usage: "what the role is for"},
		&cli.StringSliceFlag{Name: "scope", Usage: "a scope (repeat the flag for more)"},
	}
	return &cli.Command{
		Name:  "role",
		Usage: "manage roles on a control plane (TASKCLUSTER_ROOT_URL, _CLIENT_ID, _ACCESS_TOKEN)",
		Subcommands: []*cli.Command{
			{
				Name: "list", Usage: "list roleIds (or full roles with --json)",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print full role objects"}},
				Action: func(c *cli.Context) error {
					if c.Bool("json") {
						return call(c, http.MethodGet, "/roles/", nil, nil)
					}
					client, err := apiClient()
					if err != nil {
						return err
					}
					var page struct {
						RoleIDs []string `json:"roleIds"`
					}
					if err := client.Do(c.Context, http.MethodGet, "/roleids/", nil, nil, &page); err != nil {
						return err
					}
					for _, id := range page.RoleIDs {
						fmt.Fprintln(c.App.Writer, id)
					}
					return nil
				},
			},
			{Name: "get", Usage: "show one role", ArgsUsage: "ROLE_ID", Action: idAction(http.MethodGet)},
			{Name: "create", Usage: "create a role", ArgsUsage: "ROLE_ID", Flags: flags, Action: writeAction(http.MethodPut)},
			{Name: "update", Usage: "replace a role's description and scopes", ArgsUsage: "ROLE_ID", Flags: flags, Action: writeAction(http.MethodPost)},
			{Name: "delete", Usage: "delete a role", ArgsUsage: "ROLE_ID", Action: idAction(http.MethodDelete)},
		},
	}
}

// expandRemote asks the control plane to expand scopes through its roles
// (`tcauth scopes expand --remote`).
func expandRemote(ctx context.Context, scopes []string) ([]string, error) {
	client, err := apiClient()
	if err != nil {
		return nil, err
	}
	if scopes == nil {
		scopes = []string{}
	}
	var out struct {
		Scopes []string `json:"scopes"`
	}
	err = client.Do(ctx, http.MethodPost, "/scopes/expand", nil, map[string]any{"scopes": scopes}, &out)
	return out.Scopes, err
}
