package webui

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
)

// testSigninCLI: the real `tcauth signin` prints the URL of the tools
// flow; the (signed-in) browser opens it, the confirmation page shows the
// client to be made — clientId under the identity, the requested scopes
// the user holds and the one they lack — and on confirmation the CLI gets
// the credentials and prints export lines that taskcluster-client uses.
func (s *suite) testSigninCLI(t *testing.T) {
	harness.NeedNode(t)
	s.alice.signIn(t)
	before := s.clientIDs(t)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Bin(t), "signin", "--port", "0", "--no-browser", "--timeout", "60s",
		"--name", "it-cli", "--expires", "1 day", "--scope", "it:ui:read", "--scope", "auth:current-scopes", "--scope", "secrets:get:it/lacking")
	cmd.Env = append(os.Environ(), "TASKCLUSTER_ROOT_URL="+s.pub, "TASKCLUSTER_CLIENT_ID=", "TASKCLUSTER_ACCESS_TOKEN=", "DISPLAY=", "BROWSER=")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlCh, stderrText := signinURL(stderr)
	var flowURL string
	select {
	case flowURL = <-urlCh:
	case <-time.After(20 * time.Second):
		t.Fatalf("tcauth signin printed no URL:\n%s", stderrText())
	}
	t.Logf("tcauth signin: %s", flowURL)
	if !strings.HasPrefix(flowURL, s.pub+"/auth/clients/create?") {
		t.Fatalf("the URL %s is not the UI's tools flow", flowURL)
	}

	tb := s.alice.tab(t)
	tb.open(flowURL)
	text := tb.waitText(identityOf(alice)+"/it-cli", "it:ui:read", "secrets:get:it/lacking")
	if !strings.Contains(text, "localhost") {
		t.Errorf("the confirmation page does not name the callback host:\n%s", text)
	}
	tb.shot("tools-flow-confirm")
	if s.clientIDs(t) != before {
		t.Fatalf("the confirmation page created a client before the confirmation")
	}
	tb.click("Create the client")

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tcauth signin: %v\nstderr:\n%s\nstdout:\n%s\n%s", err, stderrText(), stdout.String(), tb.describe())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("tcauth signin did not finish after the confirmation:\n%s\n%s", stderrText(), tb.describe())
	}
	tb.waitURL("http://localhost:")
	if !strings.Contains(strings.ToLower(tb.text()), "signed in") {
		t.Errorf("the CLI's answer page does not say the user is signed in:\n%s", tb.describe())
	}
	env := exports(stdout.String())
	c := creds(env["TASKCLUSTER_CLIENT_ID"], env["TASKCLUSTER_ACCESS_TOKEN"])
	if env["TASKCLUSTER_ROOT_URL"] != s.pub || !strings.HasPrefix(c.ClientID, identityOf(alice)+"/it-cli") || c.AccessToken == "" {
		t.Fatalf("tcauth signin printed %q", stdout.String())
	}
	scopes, ok, msg := harness.CurrentScopes(t, s.pub, c)
	if !ok {
		t.Fatalf("taskcluster-client with the printed credentials: %s", msg)
	}
	if !slices.Contains(scopes, "it:ui:read") || slices.Contains(scopes, "secrets:get:it/lacking") {
		t.Errorf("the new client's scopes are %v, want it:ui:read and not the scope alice lacks", scopes)
	}
	cl, _ := s.client(t, c.ClientID)
	if !cl.DeleteOnExp || time.Until(cl.Expires) < 23*time.Hour || time.Until(cl.Expires) > 25*time.Hour {
		t.Errorf("the new client %+v: want deleteOnExpiration and expiry in 1 day", cl)
	}
}

// signinURL reads signin's stderr and sends the first tools-flow URL on
// it; text returns all stderr so far.
func signinURL(r io.Reader) (<-chan string, func() string) {
	ch := make(chan string, 1)
	var mu sync.Mutex
	var all strings.Builder
	go func() {
		sc := bufio.NewScanner(r)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			all.WriteString(line + "\n")
			mu.Unlock()
			if u := strings.TrimSpace(line); !sent && strings.HasPrefix(u, "http") && strings.Contains(u, "/auth/clients/create?") {
				ch <- u
				sent = true
			}
		}
	}()
	return ch, func() string { mu.Lock(); defer mu.Unlock(); return all.String() }
}

var exportRe = regexp.MustCompile(`(?m)^export (TASKCLUSTER_[A-Z_]+)=(.*)$`)

// exports parses `export NAME=value` lines (values single-quoted or
// bare).
func exports(out string) map[string]string {
	env := map[string]string{}
	for _, m := range exportRe.FindAllStringSubmatch(out, -1) {
		v := m[2]
		if strings.HasPrefix(v, "'") && strings.HasSuffix(v, "'") && len(v) >= 2 {
			v = strings.ReplaceAll(v[1:len(v)-1], `'\''`, "'")
		}
		env[m[1]] = v
	}
	return env
}

// testCallbackRefused: a tools-flow URL whose callback is not loopback
// is refused with the reference's words, and creates nothing even when
// the confirmation is posted.
func (s *suite) testCallbackRefused(t *testing.T) {
	s.alice.signIn(t)
	before := s.clientIDs(t)
	for _, cb := range []string{"http://evil.example.com:8123/", "http://localhost.evil.com/", "https://10.1.2.3/cb"} {
		t.Run(cb, func(t *testing.T) {
			tb := s.alice.tab(t)
			q := url.Values{"name": {"it-evil"}, "scope": {"it:ui:read"}, "expires": {"1 hour"}, "callback_url": {cb},
				"description": {"Temporary client for use on the command line"}}
			tb.open("/auth/clients/create?" + q.Encode())
			want := fmt.Sprintf("Callback URL %s is not allowed.", cb)
			if !strings.Contains(tb.text(), want) {
				// Refused on confirmation, as the reference does.
				if sel := tb.find("Create the client", clickables); sel != "" {
					tb.click("Create the client")
				}
			}
			tb.waitText(want)
			if cb == "http://evil.example.com:8123/" {
				tb.shot("tools-flow-refused")
			}
			if strings.HasPrefix(tb.url(), cb) {
				t.Errorf("the browser went to %s", tb.url())
			}
		})
	}
	// The confirmation form of a loopback callback, posted (same origin,
	// with its form token) with the callback swapped for a foreign one.
	t.Run("confirmation posted with a foreign callback", func(t *testing.T) {
		tb := s.alice.tab(t)
		q := url.Values{"name": {"it-swap"}, "scope": {"it:ui:read"}, "callback_url": {"http://localhost:9/cb"}}
		tb.open("/auth/clients/create?" + q.Encode())
		tb.waitText("it-swap")
		var f *formInfo
		for _, fi := range tb.forms() {
			if strings.EqualFold(fi.Method, "post") {
				f = &fi
			}
		}
		if f == nil {
			t.Fatalf("the confirmation page has no form\n%s", tb.describe())
		}
		const evil = "http://evil.example.com/cb"
		f.Action = strings.ReplaceAll(f.Action, url.QueryEscape("http://localhost:9/cb"), url.QueryEscape(evil))
		for i := range f.Fields {
			if f.Fields[i][0] == "callback_url" {
				f.Fields[i][1] = evil
			}
		}
		tb.clickWait("the swapped confirmation", submitCopyJS(tb, *f))
		tb.waitText("Callback URL " + evil + " is not allowed.")
	})
	if after := s.clientIDs(t); after != before {
		t.Errorf("refused callbacks created clients:\nbefore %s\nafter  %s", before, after)
	}
}
