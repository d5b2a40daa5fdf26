package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// Check names, also used as dependencies between checks.
const (
	chkRole      = "create role"
	chkClient    = "create client"
	chkHawk      = "authenticate (hawk)"
	chkReset     = "reset access token"
	chkSidecar   = "sidecar call"
	chkSidecarRv = "sidecar refuses revoked token"
)

// healthChecks: ping and the Dockerflow endpoints, without credentials.
func (r *checkRun) healthChecks(ctx context.Context) {
	anon := &tcclient.Client{RootURL: r.root, HTTPClient: r.hc}
	r.step("ping", nil, func() (string, error) {
		var out struct{ Alive bool }
		if err := anon.Do(ctx, http.MethodGet, "/ping", nil, nil, &out); err != nil {
			return "", err
		}
		if !out.Alive {
			return "", fmt.Errorf("ping answered alive=false")
		}
		return "alive", nil
	})
	// standbyok: behind a load balancer the node answering may be a
	// healthy follower, which /__heartbeat__ alone answers with 429.
	for _, p := range []string{"/__heartbeat__?standbyok=true", "/__lbheartbeat__", "/__version__", "/readyz"} {
		name, _, _ := strings.Cut(p, "?")
		r.step(name, nil, func() (string, error) { return r.getRoot(ctx, p) })
	}
}

// getRoot GETs a path below the root URL and wants 200; /__version__'s
// version and commit are the detail.
func (r *checkRun) getRoot(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.root+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, oneLine(string(body)))
	}
	var v struct{ Version, Commit string }
	if path == "/__version__" {
		if err := json.Unmarshal(body, &v); err != nil || v.Version == "" {
			return "", fmt.Errorf("no version in %s", oneLine(string(body)))
		}
		return strings.TrimSpace(v.Version + " " + v.Commit), nil
	}
	return "HTTP 200", nil
}

// createChecks creates the role and the client; it reports which of them
// exist, for the clean-up.
func (r *checkRun) createChecks(ctx context.Context) (created []string) {
	r.step(chkRole, nil, func() (string, error) {
		err := r.admin.Do(ctx, http.MethodPut, "/roles/"+tcclient.PathSegment(r.roleID), nil, map[string]any{
			"description": "created by `tcauth check`, deleted when it ends", "scopes": []string{r.roleScope()}}, nil)
		if err != nil {
			return "", err
		}
		created = append(created, "role")
		return r.roleID, nil
	})
	r.step(chkClient, nil, func() (string, error) {
		var out struct{ AccessToken string }
		err := r.admin.Do(ctx, http.MethodPut, "/clients/"+tcclient.PathSegment(r.clientID), nil, map[string]any{
			"description": "created by `tcauth check`, deleted when it ends", "deleteOnExpiration": true,
			"expires": time.Now().Add(r.ttl).UTC().Format(time.RFC3339), "scopes": append([]string{r.assumeScope(), "auth:current-scopes"}, r.extra...)}, &out)
		if err != nil {
			return "", err
		}
		created = append(created, "client")
		r.creds = protocol.Credentials{ClientID: r.clientID, AccessToken: out.AccessToken}
		return r.clientID + ", expires in " + r.ttl.String(), nil
	})
	return created
}

// authChecks authenticate with the throwaway client in every way a caller
// can: Hawk, authorizedScopes, temporary credentials, a bewit, and a call
// through the sidecar.
func (r *checkRun) authChecks(ctx context.Context) {
	r.step("expand scopes", []string{chkRole}, func() (string, error) {
		var out protocol.ScopesetJSON
		if err := r.admin.Do(ctx, http.MethodPost, "/scopes/expand", nil, protocol.ScopesetJSON{Scopes: []string{r.assumeScope()}}, &out); err != nil {
			return "", err
		}
		return "role scope through assume:", containsAll(out.Scopes, r.granted("*"))
	})
	r.step(chkHawk, []string{chkClient, chkRole}, func() (string, error) {
		return "role scope through assume:", r.poll(ctx, func() error { return r.currentScopes(ctx, r.creds, r.granted("*")) })
	})
	r.step("authorizedScopes", []string{chkHawk}, func() (string, error) {
		c := r.creds
		c.AuthorizedScopes = []string{"auth:current-scopes", r.granted("authorized")}
		return "restricted to one scope", r.exactScopes(ctx, c)
	})
	r.step("temporary credentials", []string{chkHawk}, func() (string, error) {
		temp, err := protocol.CreateTemporaryCredentials(protocol.TemporaryOptions{Issuer: r.creds,
			Scopes: []string{"auth:current-scopes", r.granted("temporary")}, Expiry: time.Now().Add(10 * time.Minute)})
		if err != nil {
			return "", err
		}
		return "certificate issued by the client", r.exactScopes(ctx, temp)
	})
	r.step("bewit", []string{chkHawk}, func() (string, error) { return "GET currentScopes", r.bewitCheck(ctx) })
	if r.sidecar != "" {
		r.step(chkSidecar, []string{chkHawk}, func() (string, error) {
			var detail string
			err := r.poll(ctx, func() (err error) { detail, err = r.sidecarCall(ctx, r.creds, http.StatusOK); return err })
			return detail, err
		})
	}
}

// currentScopes calls currentScopes with creds and wants the given scopes.
func (r *checkRun) currentScopes(ctx context.Context, creds protocol.Credentials, want ...string) error {
	var out protocol.ScopesetJSON
	cl := &tcclient.Client{RootURL: r.root, Credentials: &creds, HTTPClient: r.hc}
	if err := cl.Do(ctx, http.MethodGet, "/scopes/current", nil, nil, &out); err != nil {
		return err
	}
	return containsAll(out.Scopes, want...)
}

// exactScopes wants creds (restricted to one scope) to have it and not
// the client's wider ones.
func (r *checkRun) exactScopes(ctx context.Context, creds protocol.Credentials) error {
	want := creds.AuthorizedScopes
	if creds.Certificate != "" {
		want = []string{"auth:current-scopes", r.granted("temporary")}
	}
	var out protocol.ScopesetJSON
	cl := &tcclient.Client{RootURL: r.root, Credentials: &creds, HTTPClient: r.hc}
	if err := cl.Do(ctx, http.MethodGet, "/scopes/current", nil, nil, &out); err != nil {
		return err
	}
	// Whatever every caller gets (assume:anonymous) may be there too; the
	// client's own wider scopes must not.
	for _, wider := range []string{r.assumeScope(), r.granted("*")} {
		if slices.Contains(out.Scopes, wider) {
			return fmt.Errorf("scopes %q include %q: the restriction to %q was not applied", out.Scopes, wider, want)
		}
	}
	return containsAll(out.Scopes, want...)
}

func (r *checkRun) bewitCheck(ctx context.Context) error {
	target := (&tcclient.Client{RootURL: r.root}).URL("/scopes/current", nil)
	signed, err := protocol.SignedURL(r.creds, target, 5*time.Minute, time.Now())
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, signed, nil)
	if err != nil {
		return err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out protocol.ScopesetJSON
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, oneLine(string(body)))
	}
	return containsAll(out.Scopes, r.granted("*"))
}

// sidecarCall GETs --sidecar-path through the sidecar, Hawk-signed with
// creds, and wants the status want (200 = any 2xx).
func (r *checkRun) sidecarCall(ctx context.Context, creds protocol.Credentials, want int) (string, error) {
	target := r.sidecar + r.path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", err
	}
	auth, err := protocol.SignRequest(creds, http.MethodGet, target, protocol.SignOptions{})
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", auth)
	resp, err := r.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	detail := fmt.Sprintf("GET %s: HTTP %d", r.path, resp.StatusCode)
	if resp.StatusCode == want || want == http.StatusOK && resp.StatusCode/100 == 2 {
		return detail, nil
	}
	if want == http.StatusUnauthorized {
		return "", fmt.Errorf("%s, want %d (the revoked token still works there)", detail, want) // retried
	}
	// As an API error, so that poll does not wait for a 403 to go away.
	return "", &tcclient.Error{StatusCode: resp.StatusCode, Message: fmt.Sprintf("%s, want 2xx: %s", detail, oneLine(string(body)))}
}

// revocationChecks reset the client's access token and wait until the
// old one is refused — by the control plane and by the sidecar — while
// the new one works.
func (r *checkRun) revocationChecks(ctx context.Context) {
	r.step(chkReset, []string{chkHawk}, func() (string, error) {
		var out struct{ AccessToken string }
		if err := r.admin.Do(ctx, http.MethodPost, "/clients/"+tcclient.PathSegment(r.clientID)+"/reset", nil, nil, &out); err != nil {
			return "", err
		}
		r.staleCreds, r.creds.AccessToken = r.creds, out.AccessToken
		return "new token issued", nil
	})
	r.step("control plane refuses revoked token", []string{chkReset}, func() (string, error) {
		start := time.Now()
		err := r.poll(ctx, func() error { return wantRefused(r.currentScopes(ctx, r.staleCreds)) })
		return fmt.Sprintf("refused after %s", time.Since(start).Round(time.Millisecond)), err
	})
	r.step("new token accepted", []string{chkReset}, func() (string, error) {
		return "", r.poll(ctx, func() error { return r.currentScopes(ctx, r.creds, r.granted("*")) })
	})
	if r.sidecar != "" {
		r.step(chkSidecarRv, []string{chkReset, chkSidecar}, func() (string, error) {
			start := time.Now()
			err := r.poll(ctx, func() error { _, err := r.sidecarCall(ctx, r.staleCreds, http.StatusUnauthorized); return err })
			return fmt.Sprintf("refused after %s", time.Since(start).Round(time.Millisecond)), err
		})
	}
}

// wantRefused turns "the call was refused with 401" into success.
func wantRefused(err error) error {
	if apiErr, ok := err.(*tcclient.Error); ok && apiErr.StatusCode == http.StatusUnauthorized {
		return nil
	}
	if err == nil {
		return fmt.Errorf("the old access token still authenticates")
	}
	return err
}

// cleanup deletes what createChecks created.
func (r *checkRun) cleanup(ctx context.Context, created []string) {
	if slices.Contains(created, "client") {
		r.step("delete client", nil, func() (string, error) {
			return r.clientID, r.admin.Do(ctx, http.MethodDelete, "/clients/"+tcclient.PathSegment(r.clientID), nil, nil, nil)
		})
	}
	if slices.Contains(created, "role") {
		r.step("delete role", nil, func() (string, error) {
			return r.roleID, r.admin.Do(ctx, http.MethodDelete, "/roles/"+tcclient.PathSegment(r.roleID), nil, nil, nil)
		})
	}
}

func (r *checkRun) printTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tTIME\tDETAIL")
	for _, row := range r.rows {
		fmt.Fprintf(tw, "%s\t%s\t%dms\t%s\n", row.Check, row.Result, row.Millis, row.Detail)
	}
	return tw.Flush()
}

func (r *checkRun) printJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		RootURL string     `json:"rootUrl"`
		OK      bool       `json:"ok"`
		Checks  []checkRow `json:"checks"`
	}{r.root, r.ok(), r.rows})
}
