package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
	"github.com/tcauth/tcauth/scopeengine"
)

// `tcauth signin` is the official `taskcluster signin`
// (clients/client-shell/cmds/signin in github.com/taskcluster/taskcluster):
// it opens the deployment's client-creation page with a callback to a
// listener on this machine, the user confirms in the browser, and the UI
// sends the new client's credentials to the callback. The URL it opens is
// byte for byte the official one plus a `state` inside callback_url, so
// it works with Taskcluster's own UI as well as tcauth's.

// Sentinel errors of signin; each is wrapped with the details.
var (
	// ErrSigninTimeout: nobody came back to the callback within --timeout.
	ErrSigninTimeout = errors.New("timed out waiting for the browser")
	// ErrCallbackState: a callback did not carry this run's state.
	ErrCallbackState = errors.New("the callback does not carry this sign-in's state")
	// ErrCallbackCredentials: the callback's clientId or accessToken is
	// missing or malformed.
	ErrCallbackCredentials = errors.New("the callback carries no valid clientId and accessToken")
	// ErrNoScopes: --check found no credentials in the environment, or
	// credentials without scopes.
	ErrNoScopes = errors.New("no valid credentials were found")
)

const (
	signinDescription = "Temporary client for use on the command line"
	// defaultSigninTimeout is how long signin waits for the browser.
	defaultSigninTimeout = 10 * time.Minute
	// legacyRootURL is the pre-2019 deployment whose UI named the page
	// /auth/clients/new (the official client keeps that special case).
	legacyRootURL = "https://taskcluster.net"
)

// signinOptions is everything runSignin needs; the flags fill it in main,
// tests fill it directly.
type signinOptions struct {
	RootURL  string
	Scopes   []string // empty = ["*"], the official default
	Expires  string   // fromNow expression, e.g. "1d"
	Name     string   // client name prefix; a 6-character suffix is added
	Port     int      // 0 = any free port
	CSH      bool
	Check    bool // check the environment's credentials instead of signing in
	Headless bool
	Timeout  time.Duration // 0 = defaultSigninTimeout

	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// OpenBrowser opens the URL (best effort); nil = never.
	OpenBrowser func(string) error
	// HTTPClient is used for --check; nil = tcclient's default.
	HTTPClient *http.Client
	// Getenv reads the environment for --check; nil = os.Getenv.
	Getenv func(string) string
	// Listening, if set, is called with the callback URL once the
	// listener is up (tests).
	Listening func(callbackURL string)
}

// signinCreds is what the UI hands back.
type signinCreds struct{ ClientID, AccessToken string }

func signinCommand() *cli.Command {
	return &cli.Command{
		Name:  "signin",
		Usage: "get credentials through the browser and print them for the shell: eval \"$(tcauth signin)\"",
		Description: "Opens <root URL>/auth/clients/create in a browser; after you sign in and confirm, the\n" +
			"page creates a client <your identity>/<name>-<6 random characters> with the scopes you asked\n" +
			"for that you hold, and sends its credentials back to this command, which prints them as\n" +
			"`export` lines (`setenv` with --csh). Needs no credentials in the environment.",
		Flags: []cli.Flag{
			&cli.GenericFlag{Name: "scope", Aliases: []string{"s"}, Value: &repeatedString{}, Usage: "a scope for the client (repeat for more; default *)"},
			&cli.StringFlag{Name: "expires", Value: "1d", Usage: "lifetime of the client (\"1d\", \"12h\", \"1 week\"); keep it short"},
			&cli.StringFlag{Name: "name", Aliases: []string{"n"}, Value: "cli", Usage: "name of the client (a random suffix is added)"},
			&cli.IntFlag{Name: "port", Aliases: []string{"p"}, Usage: "port of the local callback listener (0 = any free port)"},
			&cli.BoolFlag{Name: "csh", Usage: "print csh setenv lines instead of Bourne-shell export lines"},
			&cli.BoolFlag{Name: "check", Usage: "do not sign in: check the credentials in the environment with auth.currentScopes; exit 1 if there are none or they have no scopes"},
			&cli.BoolFlag{Name: "headless", Usage: "do not listen: print the URL, then read the final URL of the browser from stdin"},
			&cli.BoolFlag{Name: "no-browser", Usage: "print the URL but do not try to open a browser"},
			durationFlag("timeout", defaultSigninTimeout, "how long to wait for the browser"),
			&cli.StringFlag{Name: "root-url", EnvVars: []string{"TASKCLUSTER_ROOT_URL"}, Usage: "the deployment's root URL"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return badInput("signin takes no arguments, got %q", c.Args().First())
			}
			o := signinOptions{
				RootURL: c.String("root-url"), Scopes: c.Generic("scope").(*repeatedString).values,
				Expires: c.String("expires"), Name: c.String("name"), Port: c.Int("port"),
				CSH: c.Bool("csh"), Check: c.Bool("check"), Headless: c.Bool("headless"),
				Timeout: flagDuration(c, "timeout"), Stdin: os.Stdin, Stdout: c.App.Writer, Stderr: c.App.ErrWriter,
			}
			if !c.Bool("no-browser") {
				o.OpenBrowser = openBrowser
			}
			return runSignin(c.Context, o)
		},
	}
}

// repeatedString is a repeatable flag that keeps each value whole:
// urfave/cli's StringSliceFlag splits on commas, and a scope may contain one.
// urfave/cli copies a flag with aliases by Set(String()) once parsed, so
// String() is a marked JSON form that Set recognises (the trick of its own
// StringSlice); a NUL cannot come from a command line.
type repeatedString struct{ values []string }

const repeatedMark = "\x00tcauth-repeated:"

func (r *repeatedString) Set(v string) error {
	if rest, ok := strings.CutPrefix(v, repeatedMark); ok {
		return json.Unmarshal([]byte(rest), &r.values)
	}
	r.values = append(r.values, v)
	return nil
}

func (r *repeatedString) String() string {
	if len(r.values) == 0 {
		return ""
	}
	b, _ := json.Marshal(r.values)
	return repeatedMark + string(b)
}

// runSignin is the whole command: validate, build the URL, wait for the
// credentials (listener or pasted URL), optionally check them, print them.
func runSignin(ctx context.Context, o signinOptions) error {
	if o.Check {
		return checkSignin(ctx, o)
	}
	if err := o.validate(); err != nil {
		return err
	}
	state := randomState()
	var (
		creds signinCreds
		err   error
	)
	if o.Headless {
		creds, err = signinHeadless(ctx, o, state)
	} else {
		creds, err = signinListen(ctx, o, state)
	}
	if err != nil {
		return err
	}
	// Temporary credentials' certificate would make the new permanent
	// ones fail; say so rather than print a line the official does not.
	if os.Getenv("TASKCLUSTER_CERTIFICATE") != "" {
		fmt.Fprintln(o.Stderr, "tcauth signin: TASKCLUSTER_CERTIFICATE is set in this shell; unset it, the new credentials are not temporary ones.")
	}
	_, err = io.WriteString(o.Stdout, shellExports(creds, o.RootURL, o.CSH))
	return err
}

func (o *signinOptions) validate() error {
	if o.RootURL == "" {
		return badInput("no root URL: set TASKCLUSTER_ROOT_URL or pass --root-url")
	}
	u, err := url.Parse(o.RootURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(o.RootURL, "\x00\r\n\t '\"\\") {
		return badInput("root URL %q: want http(s)://host[:port]", o.RootURL)
	}
	if len(o.Scopes) == 0 {
		o.Scopes = []string{"*"}
	}
	for _, s := range o.Scopes {
		if !scopeengine.ValidScope(s) {
			return badInput("--scope %q is not a valid scope (printable ASCII only)", s)
		}
	}
	// The page computes the clientId <identity>/<name>-<suffix>, which
	// must be a valid clientId.
	if !protocol.ValidClientID(o.Name) {
		return badInput("--name %q: use only A-Z a-z 0-9 and !@/:.+|_-", o.Name)
	}
	// The page reads --expires with fromNow; refuse here what it would
	// refuse there, and an expiry that is not in the future.
	if t, err := protocol.FromNow(o.Expires, time.Now()); err != nil || !t.After(time.Now()) {
		return badInput("--expires %q: want a future relative time like \"1d\", \"12h\", \"1 week\"", o.Expires)
	}
	if o.Port < 0 || o.Port > 65535 {
		return badInput("--port %d: want 0-65535", o.Port)
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultSigninTimeout
	}
	return nil
}

// randomState is 32 random bytes, base64url: only [A-Za-z0-9_-], so it
// survives every URL handling on the way unchanged.
func randomState() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// callbackURL is the official http://localhost:<port> plus "/?state=…".
// The "/" matters: Taskcluster's UI accepts a callback only if the port is
// followed by "/" or the end (^https?://localhost(:[0-9]+)?(/|$)).
func callbackURL(port int, state string) string {
	return "http://localhost:" + strconv.Itoa(port) + "/?state=" + state
}

// signinURL is byte for byte the URL of the official client: scopes first,
// each with url.QueryEscape, then name, expires, callback_url, description.
func signinURL(rootURL string, scopes []string, name, suffix, expires, callback string) string {
	page := "/auth/clients/create"
	root := strings.TrimRight(rootURL, "/")
	if root == legacyRootURL {
		page = "/auth/clients/new"
	}
	var b strings.Builder
	b.WriteString(root + page)
	for i, s := range scopes {
		b.WriteString(map[bool]string{true: "?", false: "&"}[i == 0])
		b.WriteString("scope=" + url.QueryEscape(s))
	}
	b.WriteString("&name=" + url.QueryEscape(name) + "-" + suffix)
	b.WriteString("&expires=" + url.QueryEscape(expires))
	b.WriteString("&callback_url=" + url.QueryEscape(callback))
	b.WriteString("&description=" + url.QueryEscape(signinDescription))
	return b.String()
}

// nameSuffix is 6 characters of a nice slugid, as the official client:
// a new client each run.
func nameSuffix() string { return protocol.Slugid()[:6] }

// parseCallbackQuery reads the credentials from the query a UI appended
// to the callback URL. What it accepts, and why:
//   - values raw, as Taskcluster's UI sends them (it does not URL-encode):
//     "+" is a literal plus (a clientId may contain one; no clientId,
//     access token or state contains a space), never a space;
//   - %XX escapes decoded, for a UI or browser that does encode (no legal
//     value contains "%", so decoding is unambiguous);
//   - "&" and "?" both separate parameters: Taskcluster's UI appends
//     "?clientId=…" even when the callback URL already has a query (our
//     state), giving "?state=S?clientId=…";
//   - a "#fragment" is dropped; a repeated state, clientId or accessToken
//     is refused (ambiguous).
//
// Then state must equal want (constant time), clientId must match the
// clientId pattern and accessToken Taskcluster's [a-zA-Z0-9_-]{22,66}.
func parseCallbackQuery(raw, want string) (signinCreds, error) {
	raw, _, _ = strings.Cut(raw, "#")
	vals := map[string]string{}
	for _, part := range strings.FieldsFunc(raw, func(r rune) bool { return r == '&' || r == '?' }) {
		k, v, _ := strings.Cut(part, "=")
		dv, err := url.PathUnescape(v)
		if err != nil {
			return signinCreds{}, fmt.Errorf("%w: bad %%-escape in %s", ErrCallbackCredentials, k)
		}
		if _, dup := vals[k]; dup && (k == "state" || k == "clientId" || k == "accessToken") {
			return signinCreds{}, fmt.Errorf("%w: %s given twice", ErrCallbackCredentials, k)
		}
		vals[k] = dv
	}
	if subtle.ConstantTimeCompare([]byte(vals["state"]), []byte(want)) != 1 {
		return signinCreds{}, ErrCallbackState
	}
	c := signinCreds{ClientID: vals["clientId"], AccessToken: vals["accessToken"]}
	if !protocol.ValidClientID(c.ClientID) || !validAccessToken(c.AccessToken) {
		return signinCreds{}, ErrCallbackCredentials
	}
	return c, nil
}

func validAccessToken(t string) bool {
	if len(t) < 22 || len(t) > 66 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// shellExports prints what the official client prints (export X='v' or
// setenv X 'v', in its order), with values quoted so that no value can
// end the quote: a single quote becomes
//
//	'\''
//
// in both shells, and csh's history "!" is escaped even inside quotes.
// The csh lines end with ";": csh's eval `cmd` joins the lines into one,
// and without it the first setenv gets every word ("setenv: Too many
// arguments", which the official output runs into); sh's export takes
// many names, so its lines work either way and are kept exactly as the
// official ones.
func shellExports(c signinCreds, rootURL string, csh bool) string {
	vars := [][2]string{{"TASKCLUSTER_CLIENT_ID", c.ClientID}, {"TASKCLUSTER_ACCESS_TOKEN", c.AccessToken}, {"TASKCLUSTER_ROOT_URL", rootURL}}
	var b strings.Builder
	for _, v := range vars {
		if csh {
			fmt.Fprintf(&b, "setenv %s %s;\n", v[0], cshQuote(v[1]))
		} else {
			fmt.Fprintf(&b, "export %s=%s\n", v[0], shQuote(v[1]))
		}
	}
	return b.String()
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func cshQuote(s string) string {
	s = strings.ReplaceAll(s, "'", `'\''`)
	return "'" + strings.ReplaceAll(s, "!", `\!`) + "'"
}

// checkSignin is --check, as the official client's: "are you already
// signed in?" — the credentials in the environment (TASKCLUSTER_CLIENT_ID,
// TASKCLUSTER_ACCESS_TOKEN, TASKCLUSTER_CERTIFICATE) must have some scopes.
// Nothing is signed in or printed, so `tcauth signin --check || eval
// "$(tcauth signin)"` opens a browser only when needed.
func checkSignin(ctx context.Context, o signinOptions) error {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if o.RootURL == "" {
		return badInput("--root-url (or TASKCLUSTER_ROOT_URL) is required")
	}
	c := signinCreds{ClientID: getenv("TASKCLUSTER_CLIENT_ID"), AccessToken: getenv("TASKCLUSTER_ACCESS_TOKEN")}
	if c.ClientID == "" || c.AccessToken == "" {
		fmt.Fprintln(o.Stderr, "tcauth signin: "+ErrNoScopes.Error()+" (TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN are not both set)")
		return &exitError{code: 1, err: ErrNoScopes}
	}
	client := &tcclient.Client{RootURL: o.RootURL, HTTPClient: o.HTTPClient,
		Credentials: &protocol.Credentials{ClientID: c.ClientID, AccessToken: c.AccessToken, Certificate: getenv("TASKCLUSTER_CERTIFICATE")}}
	var out struct{ Scopes []string }
	err := client.Do(ctx, http.MethodGet, "/scopes/current", nil, nil, &out)
	// A client without scopes cannot call currentScopes at all (it needs
	// auth:current-scopes): a 403 is the same answer as an empty list, and
	// a 401 (unknown client, wrong token, expired) means no valid
	// credentials either.
	var te *tcclient.Error
	if err != nil && !(errors.As(err, &te) && (te.StatusCode == http.StatusForbidden || te.StatusCode == http.StatusUnauthorized)) {
		return fmt.Errorf("checking the credentials of %s: %w", c.ClientID, err)
	}
	if len(out.Scopes) == 0 {
		fmt.Fprintln(o.Stderr, "tcauth signin: "+ErrNoScopes.Error()+" ("+c.ClientID+" has no scopes)")
		return &exitError{code: 1, err: ErrNoScopes}
	}
	return nil
}

// listen binds 127.0.0.1 (never every interface), as the official client.
func listenLoopback(port int) (net.Listener, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("listening on 127.0.0.1:%d for the browser's callback: %w", port, err)
	}
	return l, nil
}

// signinListen is the official flow: a listener on 127.0.0.1, the URL
// printed and opened, and the first callback with this run's state and
// valid credentials ends the wait. Every request gets an answer (a
// browser must never hang on "connecting to localhost").
func signinListen(ctx context.Context, o signinOptions, state string) (signinCreds, error) {
	l, err := listenLoopback(o.Port)
	if err != nil {
		return signinCreds{}, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	cb := callbackURL(port, state)
	got := make(chan signinCreds, 1)
	srv := &http.Server{Handler: callbackHandler(state, got), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer func() {
		// Shutdown waits for the handler that answered the browser to
		// finish writing its page, then closes the listener.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if o.Listening != nil {
		o.Listening(cb)
	}
	u := signinURL(o.RootURL, o.Scopes, o.Name, nameSuffix(), o.Expires, cb)
	fmt.Fprintf(o.Stderr, "tcauth signin: open this URL in your browser to sign in to %s:\n\n  %s\n\n", o.RootURL, u)
	if o.OpenBrowser != nil {
		if err := o.OpenBrowser(u); err != nil {
			fmt.Fprintf(o.Stderr, "(could not open a browser: %v; open the URL yourself)\n", err)
		}
	}
	fmt.Fprintf(o.Stderr, "Sign in if asked, check the client and confirm. Waiting for the browser at http://localhost:%d/ for %v (Ctrl-C to stop; --headless if the browser is on another machine).\n", port, o.Timeout)
	return waitCallback(ctx, o.Timeout, got, fmt.Sprintf("http://localhost:%d/", port))
}

func waitCallback(ctx context.Context, timeout time.Duration, got <-chan signinCreds, what string) (signinCreds, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case c := <-got:
		return c, nil
	case <-t.C:
		return signinCreds{}, fmt.Errorf("%w: the browser did not come back to %s within %v; run tcauth signin again (--timeout to wait longer, --headless if the browser is on another machine)", ErrSigninTimeout, what, timeout)
	case <-ctx.Done():
		return signinCreds{}, ctx.Err()
	}
}

// callbackHandler answers every request: 200 "signed in" for the first
// callback with the right state and credentials (handed to got); 400 for a
// wrong or missing state or bad credentials, and the wait goes on (a
// stray or forged request cannot end it, nor plant other credentials).
func callbackHandler(state string, got chan<- signinCreds) http.Handler {
	var once sync.Once
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Frame-Options", "DENY")
		if r.URL.Path != "/" {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, callbackPage("Not found", "This is the callback of tcauth signin; nothing lives here."))
			return
		}
		if r.Method != http.MethodGet {
			h.Set("Allow", "GET")
			w.WriteHeader(http.StatusMethodNotAllowed)
			io.WriteString(w, callbackPage("Method not allowed", "The callback of tcauth signin takes a GET."))
			return
		}
		c, err := parseCallbackQuery(r.URL.RawQuery, state)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, callbackPage("Sign-in not accepted", callbackErrorText(err)))
			return
		}
		once.Do(func() { got <- c })
		io.WriteString(w, callbackPage("You have successfully signed in", "tcauth signin has received the credentials. You may now close this tab."))
	})
}

func callbackErrorText(err error) string {
	if errors.Is(err, ErrCallbackState) {
		return "This link does not belong to the tcauth signin that is waiting (its state does not match), so it was ignored. tcauth signin is still waiting for its own link."
	}
	return "The link carries no valid clientId and accessToken, so it was ignored. tcauth signin is still waiting."
}

// callbackPage is a complete page with fixed text only: nothing from the
// request is echoed into it.
func callbackPage(title, text string) string {
	return "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>" + title + "</title></head>\n<body>\n<h1>" + title + "</h1>\n<p>" + text + "</p>\n</body>\n</html>\n"
}

// signinHeadless: nothing listens. The browser (on any machine) ends on
// the callback URL with the credentials, which fails to load there; the
// user pastes that address. The callback port is --port or a random high
// one, so no program on the browser's machine is likely to be listening
// and receive the credentials.
func signinHeadless(ctx context.Context, o signinOptions, state string) (signinCreds, error) {
	port := o.Port
	if port == 0 {
		port = randomHighPort()
	}
	u := signinURL(o.RootURL, o.Scopes, o.Name, nameSuffix(), o.Expires, callbackURL(port, state))
	fmt.Fprintf(o.Stderr, "tcauth signin --headless: open this URL in a browser on any machine to sign in to %s:\n\n  %s\n\n", o.RootURL, u)
	fmt.Fprintf(o.Stderr, "Sign in if asked, check the client and confirm. The browser then goes to http://localhost:%d/?state=… and fails to load it: that is expected.\nCopy the whole address from the address bar and paste it here (waiting %v):\n", port, o.Timeout)
	got := make(chan signinCreds, 1)
	failed := make(chan error, 1)
	go readPastedURL(o.Stdin, o.Stderr, state, got, failed)
	t := time.NewTimer(o.Timeout)
	defer t.Stop()
	select {
	case c := <-got:
		return c, nil
	case err := <-failed:
		return signinCreds{}, err
	case <-t.C:
		return signinCreds{}, fmt.Errorf("%w: no URL was pasted within %v; run tcauth signin --headless again (--timeout to wait longer)", ErrSigninTimeout, o.Timeout)
	case <-ctx.Done():
		return signinCreds{}, ctx.Err()
	}
}

// readPastedURL reads lines until one is the callback of this run; a wrong
// line gets a message and another chance. The goroutine of a timed-out
// read ends with the process.
func readPastedURL(in io.Reader, errw io.Writer, state string, got chan<- signinCreds, failed chan<- error) {
	if in == nil {
		failed <- badInput("--headless needs the URL on stdin")
		return
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		c, err := parsePastedURL(line, state)
		if err == nil {
			got <- c
			return
		}
		fmt.Fprintf(errw, "tcauth signin: %v. Paste the whole address the browser ended on (http://localhost:…/?state=…&clientId=…&accessToken=…):\n", err)
	}
	failed <- fmt.Errorf("%w: stdin ended before a valid callback URL was pasted", ErrCallbackCredentials)
}

// randomHighPort is in the dynamic range 49152-65535 (RFC 6335).
func randomHighPort() int {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return 49152 + int(binary.BigEndian.Uint16(b[:]))%16384
}

// parsePastedURL takes the address bar's text: the whole URL, or just its
// query. The part after the first "?" is read by parseCallbackQuery.
func parsePastedURL(line, state string) (signinCreds, error) {
	_, q, found := strings.Cut(line, "?")
	if !found {
		q = line
	}
	return parseCallbackQuery(q, state)
}

// openBrowser starts the desktop's URL opener without waiting for it and
// with its output discarded (stdout is the shell's eval). On Linux only
// with a graphical session: a text browser would take over the terminal.
func openBrowser(u string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return errors.New("no graphical session (DISPLAY unset)")
		}
		cmd = exec.Command("xdg-open", u)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
