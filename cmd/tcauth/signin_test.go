package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol/prototest"
)

// TestSigninURLOfficial checks the URL against the official client's
// format (clients/client-shell/cmds/signin/signin.go): scopes first, each
// url.QueryEscape'd ("*" is %2A), then name-suffix, expires, callback_url
// and the fixed description, "+" for its spaces.
func TestSigninURLOfficial(t *testing.T) {
	const desc = "&description=Temporary+client+for+use+on+the+command+line"
	tests := []struct {
		root     string
		scopes   []string
		name     string
		expires  string
		callback string
		want     string
	}{
		{"https://tc.example.com", []string{"*"}, "cli", "1d", "http://localhost:51234",
			"https://tc.example.com/auth/clients/create?scope=%2A&name=cli-AbCdEf&expires=1d&callback_url=http%3A%2F%2Flocalhost%3A51234" + desc},
		{"https://tc.example.com/", []string{"queue:create-task:*", "secrets:*", "hooks:*"}, "cli", "1d", "http://localhost:51234",
			"https://tc.example.com/auth/clients/create?scope=queue%3Acreate-task%3A%2A&scope=secrets%3A%2A&scope=hooks%3A%2A&name=cli-AbCdEf&expires=1d&callback_url=http%3A%2F%2Flocalhost%3A51234" + desc},
		{"http://127.0.0.1:8080", []string{"a b", "x/y+z"}, "my.tool", "2 hours", "http://localhost:1/?state=S_-1",
			"http://127.0.0.1:8080/auth/clients/create?scope=a+b&scope=x%2Fy%2Bz&name=my.tool-AbCdEf&expires=2+hours&callback_url=http%3A%2F%2Flocalhost%3A1%2F%3Fstate%3DS_-1" + desc},
		// The pre-2019 deployment's UI named the page /auth/clients/new.
		{"https://taskcluster.net", []string{"*"}, "cli", "1d", "http://localhost:5",
			"https://taskcluster.net/auth/clients/new?scope=%2A&name=cli-AbCdEf&expires=1d&callback_url=http%3A%2F%2Flocalhost%3A5" + desc},
	}
	for _, tc := range tests {
		got := signinURL(tc.root, tc.scopes, tc.name, "AbCdEf", tc.expires, tc.callback)
		if got != tc.want {
			t.Errorf("signinURL(%q, %q):\n got %s\nwant %s", tc.root, tc.scopes, got, tc.want)
		}
		// What a UI reads back (qs / url.ParseQuery) is what was asked.
		u, _ := url.Parse(got)
		q := u.Query()
		if !slices.Equal(q["scope"], tc.scopes) || q.Get("name") != tc.name+"-AbCdEf" || q.Get("expires") != tc.expires ||
			q.Get("callback_url") != tc.callback || q.Get("description") != signinDescription {
			t.Errorf("%s: reads back as %v", got, q)
		}
	}
}

// TestSigninCallbackURLAcceptedByReferenceUI: the callback with its state
// must pass Taskcluster's UI check ^https?://localhost(:[0-9]+)?(/|$) —
// "http://localhost:P?state=…" (no "/") would not.
func TestSigninCallbackURLAcceptedByReferenceUI(t *testing.T) {
	ref := regexp.MustCompile(`^https?://localhost(:[0-9]+)?(/|$)`)
	for _, port := range []int{1, 80, 51234, 65535} {
		cb := callbackURL(port, randomState())
		if !ref.MatchString(cb) {
			t.Errorf("%s refused by the reference UI's check", cb)
		}
	}
	if s := randomState(); !regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`).MatchString(s) {
		t.Errorf("state %q: want 43 base64url characters", s)
	}
	if s := nameSuffix(); !regexp.MustCompile(`^[A-Za-f][A-Za-z0-9_-]{5}$`).MatchString(s) {
		t.Errorf("suffix %q: want 6 characters of a nice slugid", s)
	}
}

const (
	testState = "s7V0sJ9c1xAe5VgJm2m1Qn0aK9s8bq0S3y2m4Zb1P_-"
	testToken = "xwNQlsV-yytMaIxLAeV1RU687j5bgii_aIozE1DcIII"
)

func TestParseCallbackQuery(t *testing.T) {
	id := "github/1234|octocat/cli-AbCdEf"
	tests := []struct {
		name, raw string
		wantID    string
		wantErr   error
	}{
		{"tcauth UI: state kept, credentials appended with &", "state=" + testState + "&clientId=" + id + "&accessToken=" + testToken, id, nil},
		{"Taskcluster UI: appends ?clientId= after our ?state=", "state=" + testState + "?clientId=" + id + "&accessToken=" + testToken, id, nil},
		{"order does not matter", "clientId=" + id + "&accessToken=" + testToken + "&state=" + testState, id, nil},
		{"+ is a literal plus, never a space", "state=" + testState + "&clientId=a+b/c&accessToken=" + testToken, "a+b/c", nil},
		{"%-escapes decoded", "state=" + testState + "&clientId=github%2F1234%7Coctocat%2Fcli&accessToken=" + testToken, "github/1234|octocat/cli", nil},
		{"%2B is a plus", "state=" + testState + "&clientId=a%2Bb&accessToken=" + testToken, "a+b", nil},
		{"fragment dropped", "state=" + testState + "&clientId=x&accessToken=" + testToken + "#frag", "x", nil},
		{"unknown parameters ignored", "utm=1&state=" + testState + "&clientId=x&accessToken=" + testToken, "x", nil},
		{"no state", "clientId=x&accessToken=" + testToken, "", ErrCallbackState},
		{"wrong state", "state=" + testState[:42] + "X&clientId=x&accessToken=" + testToken, "", ErrCallbackState},
		{"state prefix only", "state=" + testState[:10] + "&clientId=x&accessToken=" + testToken, "", ErrCallbackState},
		{"empty query", "", "", ErrCallbackState},
		{"state twice", "state=" + testState + "&state=" + testState + "&clientId=x&accessToken=" + testToken, "", ErrCallbackCredentials},
		{"clientId twice", "state=" + testState + "&clientId=x&clientId=y&accessToken=" + testToken, "", ErrCallbackCredentials},
		{"no clientId", "state=" + testState + "&accessToken=" + testToken, "", ErrCallbackCredentials},
		{"no accessToken", "state=" + testState + "&clientId=x", "", ErrCallbackCredentials},
		{"space in clientId (form-decoded +)", "state=" + testState + "&clientId=a%20b&accessToken=" + testToken, "", ErrCallbackCredentials},
		{"short accessToken", "state=" + testState + "&clientId=x&accessToken=abc", "", ErrCallbackCredentials},
		{"bad escape", "state=" + testState + "&clientId=%zz&accessToken=" + testToken, "", ErrCallbackCredentials},
		{"quote in token", "state=" + testState + "&clientId=x&accessToken=" + testToken[:30] + "'", "", ErrCallbackCredentials},
	}
	for _, tc := range tests {
		c, err := parseCallbackQuery(tc.raw, testState)
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && (c.ClientID != tc.wantID || c.AccessToken != testToken)) {
			t.Errorf("%s: got %+v, %v; want %q, %v", tc.name, c, err, tc.wantID, tc.wantErr)
		}
	}
}

func FuzzParseCallbackQuery(f *testing.F) {
	f.Add("state=" + testState + "&clientId=a/b&accessToken=" + testToken)
	f.Add("state=" + testState + "?clientId=a+b&accessToken=" + testToken + "#x")
	f.Add("%zz&&??==")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := parseCallbackQuery(raw, testState)
		if err == nil && (!validAccessToken(c.AccessToken) || strings.ContainsAny(c.ClientID, " '\"\n&?#%")) {
			t.Fatalf("%q accepted as %+v", raw, c)
		}
	})
}

func TestSigninCallbackHandler(t *testing.T) {
	got := make(chan signinCreds, 1)
	h := callbackHandler(testState, got)
	good := "/?state=" + testState + "&clientId=a/b&accessToken=" + testToken
	tests := []struct {
		method, target string
		status         int
		body           string
	}{
		{"GET", "/?state=wrong&clientId=a/b&accessToken=" + testToken, 400, "does not match"},
		{"GET", "/?clientId=a/b&accessToken=" + testToken, 400, "does not match"},
		{"GET", "/?state=" + testState + "&clientId=a/b", 400, "no valid clientId"},
		{"GET", "/favicon.ico", 404, "nothing lives here"},
		{"POST", good, 405, "takes a GET"},
		{"GET", good, 200, "You have successfully signed in"},
		{"GET", good, 200, "You have successfully signed in"}, // a reload is answered too
	}
	for _, tc := range tests {
		rec := newRecorder()
		req, _ := http.NewRequest(tc.method, "http://localhost:1"+tc.target, nil)
		h.ServeHTTP(rec, req)
		if rec.status != tc.status || !strings.Contains(rec.body.String(), tc.body) {
			t.Errorf("%s %s: %d %q; want %d containing %q", tc.method, tc.target, rec.status, rec.body.String(), tc.status, tc.body)
		}
		if ct := rec.h.Get("Content-Type"); ct != "text/html; charset=utf-8" || rec.h.Get("Cache-Control") != "no-store" || rec.h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", tc.target, rec.h)
		}
		if tc.status != 200 && len(got) != 0 {
			t.Fatalf("%s %s ended the wait", tc.method, tc.target)
		}
	}
	if c := <-got; c.ClientID != "a/b" || c.AccessToken != testToken {
		t.Errorf("handed over %+v", c)
	}
}

type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder                    { return &recorder{h: http.Header{}} }
func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { r.wh(200); return r.body.Write(b) }
func (r *recorder) WriteHeader(s int)           { r.wh(s) }
func (r *recorder) wh(s int) {
	if r.status == 0 {
		r.status = s
	}
}

func TestSigninShellExports(t *testing.T) {
	c := signinCreds{ClientID: "github/1234|octocat/cli-AbCdEf", AccessToken: testToken}
	// The official client's lines, byte for byte.
	wantSh := "export TASKCLUSTER_CLIENT_ID='github/1234|octocat/cli-AbCdEf'\n" +
		"export TASKCLUSTER_ACCESS_TOKEN='" + testToken + "'\n" +
		"export TASKCLUSTER_ROOT_URL='https://tc.example.com'\n"
	if got := shellExports(c, "https://tc.example.com", false); got != wantSh {
		t.Errorf("sh:\n%s\nwant\n%s", got, wantSh)
	}
	// The official ones plus ";" so that csh's eval `...` works.
	wantCsh := "setenv TASKCLUSTER_CLIENT_ID 'github/1234|octocat/cli-AbCdEf';\n" +
		"setenv TASKCLUSTER_ACCESS_TOKEN '" + testToken + "';\n" +
		"setenv TASKCLUSTER_ROOT_URL 'https://tc.example.com';\n"
	if got := shellExports(c, "https://tc.example.com", true); got != wantCsh {
		t.Errorf("csh:\n%s\nwant\n%s", got, wantCsh)
	}
	if got, want := shQuote("it's"), `'it'\''s'`; got != want {
		t.Errorf("shQuote: %s, want %s", got, want)
	}
	if got, want := cshQuote("a!b'c"), `'a\!b'\''c'`; got != want {
		t.Errorf("cshQuote: %s, want %s", got, want)
	}
	// Values that would break naive quoting (clientIds may hold "!",
	// "|", "+"; a root URL is the user's) survive a real shell's eval, in
	// both usual forms.
	odd := signinCreds{ClientID: "a!21b|c+d", AccessToken: testToken}
	root := "https://tc.example.com/$HOME`id`!x"
	want := odd.ClientID + "\n" + testToken + "\n" + root
	show := `printf '%s\n%s\n%s' "$TASKCLUSTER_CLIENT_ID" "$TASKCLUSTER_ACCESS_TOKEN" "$TASKCLUSTER_ROOT_URL"`
	ran := 0
	for _, shell := range []string{"sh", "bash", "dash", "tcsh"} {
		if _, err := exec.LookPath(shell); err != nil {
			continue
		}
		ran++
		csh := shell == "tcsh"
		forms := []string{`eval "$(cat "$0")"; ` + show, "eval `cat \"$0\"`; " + show}
		args := []string{"-c"}
		if csh {
			forms = []string{"eval \"`cat $argv[1]`\"; " + show, "eval `cat $argv[1]`; " + show}
			args = []string{"-f", "-c"}
		}
		file := filepath.Join(t.TempDir(), "out")
		if err := os.WriteFile(file, []byte(shellExports(odd, root, csh)), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, form := range forms {
			out, err := exec.Command(shell, append(args, form, file)...).CombinedOutput()
			if err != nil || string(out) != want {
				t.Errorf("%s: %s\n  gives %q, %v; want %q", shell, form, out, err, want)
			}
		}
	}
	if ran == 0 {
		t.Skip("no shell found")
	}
}

// waitPrintedURL waits until signin has printed its URL on stderr and
// returns it, with the state inside its callback_url.
func waitPrintedURL(t *testing.T, stderr *prototest.SyncBuffer) (string, string) {
	t.Helper()
	re := regexp.MustCompile(`\n\n  (http\S+)\n\n`)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			u, err := url.Parse(m[1])
			if err != nil {
				t.Fatal(err)
			}
			cb, err := url.Parse(u.Query().Get("callback_url"))
			if err != nil {
				t.Fatal(err)
			}
			return m[1], cb.Query().Get("state")
		}
	}
	t.Fatalf("no URL printed; stderr: %s", stderr.String())
	return "", ""
}

func testSigninOptions(stdout io.Writer, stderr *prototest.SyncBuffer) signinOptions {
	return signinOptions{RootURL: "https://tc.example.com", Expires: "1d", Name: "cli",
		Timeout: 10 * time.Second, Stdout: stdout, Stderr: stderr}
}

// TestSigninListener runs the command's core with a browser that comes
// back to the printed callback_url: first with a wrong state (400; the
// command keeps waiting), then as Taskcluster's UI does (raw values, "?"
// appended), then checks the printed lines.
func TestSigninListener(t *testing.T) {
	var stdout bytes.Buffer
	stderr := &prototest.SyncBuffer{}
	o := testSigninOptions(&stdout, stderr)
	var opened string
	o.OpenBrowser = func(u string) error { opened = u; return errors.New("no browser here") }
	done := make(chan error, 1)
	go func() { done <- runSignin(context.Background(), o) }()
	printed, state := waitPrintedURL(t, stderr)
	cb, _ := url.Parse(printed)
	callback := cb.Query().Get("callback_url")
	if !strings.HasPrefix(callback, "http://localhost:") || opened != printed {
		t.Fatalf("callback %q, opened %q", callback, opened)
	}
	// The listener is on 127.0.0.1 while the URL says localhost.
	direct := strings.Replace(callback, "localhost", "127.0.0.1", 1)
	resp, err := http.Get(strings.Replace(direct, state, "forged", 1) + "&clientId=evil/x&accessToken=" + testToken)
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("forged callback: %v %v", resp, err)
	}
	resp.Body.Close()
	select {
	case err := <-done:
		t.Fatalf("a forged callback ended the wait: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	resp, err = http.Get(direct + "?clientId=github/1234|octocat/cli-AbCdEf&accessToken=" + testToken)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "close this tab") {
		t.Fatalf("callback answered %d %q", resp.StatusCode, body)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := shellExports(signinCreds{"github/1234|octocat/cli-AbCdEf", testToken}, "https://tc.example.com", false)
	if stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	if !strings.Contains(stderr.String(), "could not open a browser") || !strings.Contains(stderr.String(), "Waiting for the browser") {
		t.Errorf("stderr lacks instructions: %s", stderr.String())
	}
}

func TestSigninTimeout(t *testing.T) {
	var stdout bytes.Buffer
	for _, headless := range []bool{false, true} {
		stderr := &prototest.SyncBuffer{}
		o := testSigninOptions(&stdout, stderr)
		o.Timeout, o.Headless = 100*time.Millisecond, headless
		o.Stdin, _ = io.Pipe() // never written
		start := time.Now()
		err := runSignin(context.Background(), o)
		if !errors.Is(err, ErrSigninTimeout) || !strings.Contains(err.Error(), "100ms") || exitCode(err) != 1 {
			t.Errorf("headless=%v: %v", headless, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("headless=%v: took %v", headless, d)
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("printed %q on timeout", stdout.String())
	}
}

// TestSigninHeadless: nothing listens; pasted lines are read until one
// is this run's callback (a wrong state and garbage get another chance).
func TestSigninHeadless(t *testing.T) {
	var stdout bytes.Buffer
	stderr := &prototest.SyncBuffer{}
	o := testSigninOptions(&stdout, stderr)
	o.Headless, o.CSH = true, true
	o.OpenBrowser = func(string) error { t.Error("headless opened a browser"); return nil }
	in, w := io.Pipe()
	o.Stdin = in
	done := make(chan error, 1)
	go func() { done <- runSignin(context.Background(), o) }()
	printed, state := waitPrintedURL(t, stderr)
	u, _ := url.Parse(printed)
	cb := u.Query().Get("callback_url")
	if !regexp.MustCompile(`^http://localhost:(49[1-9]|[5-6])[0-9]+/\?state=`).MatchString(cb) {
		t.Errorf("headless callback %q", cb)
	}
	// Written from a goroutine: a pipe write blocks once the command has
	// stopped reading (a regression must fail, not hang).
	go func() {
		io.WriteString(w, "\nnot a url\n")
		io.WriteString(w, cb[:len(cb)-len(state)]+"other&clientId=a/b&accessToken="+testToken+"\n")
		io.WriteString(w, "  "+cb+"?clientId=github/1234%7Coctocat/cli-x&accessToken="+testToken+"  \n")
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout.String(), "setenv TASKCLUSTER_CLIENT_ID 'github/1234|octocat/cli-x';\n") {
		t.Errorf("stdout %q", stdout.String())
	}
	if n := strings.Count(stderr.String(), "Paste the whole address"); n != 2 {
		t.Errorf("%d retry prompts, want 2: %s", n, stderr.String())
	}
	// Stdin ending without a good line is a clear error, not a hang.
	stdout.Reset()
	o.Stdin = strings.NewReader("garbage\n")
	if err := runSignin(context.Background(), o); !errors.Is(err, ErrCallbackCredentials) || stdout.Len() != 0 {
		t.Errorf("EOF: %v, printed %q", err, stdout.String())
	}
}

func TestSigninBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*signinOptions)
	}{
		{"no root URL", func(o *signinOptions) { o.RootURL = "" }},
		{"root URL not http", func(o *signinOptions) { o.RootURL = "ftp://x" }},
		{"root URL with a quote", func(o *signinOptions) { o.RootURL = "https://x/'" }},
		{"bad scope", func(o *signinOptions) { o.Scopes = []string{"a\nb"} }},
		{"bad name", func(o *signinOptions) { o.Name = "my tool" }},
		{"empty name", func(o *signinOptions) { o.Name = "" }},
		{"bad expires", func(o *signinOptions) { o.Expires = "3 fortnights" }},
		{"past expires", func(o *signinOptions) { o.Expires = "-1d" }},
		{"empty expires", func(o *signinOptions) { o.Expires = "" }},
		{"bad port", func(o *signinOptions) { o.Port = 70000 }},
	} {
		o := testSigninOptions(io.Discard, &prototest.SyncBuffer{})
		tc.edit(&o)
		if err := runSignin(context.Background(), o); exitCode(err) != 2 {
			t.Errorf("%s: %v (exit %d), want bad input", tc.name, err, exitCode(err))
		}
	}
}

// TestSigninFlags: the command line reaches the core, repeated scopes
// stay whole (a comma is part of a scope, not a separator).
func TestSigninFlags(t *testing.T) {
	app := newApp()
	var stderr bytes.Buffer
	app.ErrWriter, app.Writer = &stderr, io.Discard
	err := app.Run(permuteArgs(app, []string{"tcauth", "signin", "--root-url", "https://tc.example.com", "--no-browser",
		"--scope", "queue:route:a,b", "--scope", "x", "--timeout", "1ms", "--port", "0"}))
	if !errors.Is(err, ErrSigninTimeout) {
		t.Fatalf("%v; stderr %s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "?scope=queue%3Aroute%3Aa%2Cb&scope=x&name=cli-") {
		t.Errorf("stderr: %s", stderr.String())
	}
	stderr.Reset()
	app = newApp()
	app.ErrWriter, app.Writer = &stderr, io.Discard
	err = app.Run(permuteArgs(app, []string{"tcauth", "signin", "--root-url", "https://tc.example.com", "--no-browser",
		"-s", "a:b", "-n", "tool", "--timeout", "1ms"}))
	if !errors.Is(err, ErrSigninTimeout) || !strings.Contains(stderr.String(), "?scope=a%3Ab&name=tool-") {
		t.Errorf("short flags: %v; stderr: %s", err, stderr.String())
	}
}
