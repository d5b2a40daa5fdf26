package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// ReserveAddr is FreeAddr for code without a testing.TB (a TestMain that
// starts a peer once per test binary and must know, before any cluster
// exists, the callback URLs to register at that peer).
func ReserveAddr() (string, error) {
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, taken := handedOut.LoadOrStore(addr, struct{}{}); !taken {
			return addr, nil
		}
	}
}

// ReserveAddrs is n calls of ReserveAddr.
func ReserveAddrs(n int) ([]string, error) {
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		a, err := ReserveAddr()
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// OIDCExampleEnv names the environment variable holding the path of the
// example OpenID provider of github.com/zitadel/oidc/v3 (example/server),
// the real OIDC provider of the login tests. `make deps-oidc` builds it
// into bin/peers/ and the Makefile's test targets set the variable.
const OIDCExampleEnv = "TCAUTH_OIDC_EXAMPLE"

// OIDCExampleBin returns the example OpenID provider's binary: $OIDCExampleEnv,
// else bin/peers/zitadel-oidc-example in this checkout. reason says why
// it is unusable when path is "".
func OIDCExampleBin() (path, reason string) {
	p := os.Getenv(OIDCExampleEnv)
	if p == "" {
		_, here, _, _ := runtime.Caller(0)
		p = filepath.Join(filepath.Dir(here), "..", "..", "bin", "peers", "zitadel-oidc-example")
	}
	if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Sprintf("the zitadel example OpenID provider is not at %s (run `make deps-oidc`, or set %s)", p, OIDCExampleEnv)
	}
	return p, ""
}

// OIDCUser is one entry of the example provider's USERS_FILE (a JSON
// object keyed by user id; the fields of its storage.User).
type OIDCUser struct {
	ID                string
	Username          string
	Password          string
	FirstName         string
	LastName          string
	Email             string
	EmailVerified     bool
	PreferredLanguage string
	IsAdmin           bool
}

// OIDCExample is a running example OpenID provider. Its issuer is
// http://localhost:<port>/ (hard-coded in the example's main.go); it
// registers the clients "web" and "api" (secret "secret", client_secret_basic,
// opaque access tokens valid 5 minutes, refresh tokens with
// offline_access) and "native" (PKCE, no secret), all with the redirect
// URIs of REDIRECT_URI.
type OIDCExample struct {
	*Process
	Issuer string
	Port   string
}

// StartOIDCExample starts the example provider on port with users and
// redirect URIs, logging into logDir, and waits for its discovery
// document. It needs no testing.TB so that a TestMain can run it once.
func StartOIDCExample(bin, port, logDir string, users []OIDCUser, redirectURIs []string) (*OIDCExample, error) {
	byID := map[string]OIDCUser{}
	for _, u := range users {
		if u.PreferredLanguage == "" {
			u.PreferredLanguage = "en"
		}
		byID[u.ID] = u
	}
	b, err := json.Marshal(byID)
	if err != nil {
		return nil, err
	}
	usersFile := filepath.Join(logDir, "oidc-users.json")
	if err := os.WriteFile(usersFile, b, 0o600); err != nil {
		return nil, err
	}
	p := NewProcess(nil, bin, "zitadel-oidc-example", logDir)
	p.Env = []string{"PORT=" + port, "USERS_FILE=" + usersFile, "REDIRECT_URI=" + strings.Join(redirectURIs, ",")}
	if err := p.Start(); err != nil {
		return nil, err
	}
	o := &OIDCExample{Process: p, Issuer: "http://localhost:" + port + "/", Port: port}
	if err := WaitHTTP(context.Background(), o.Issuer+".well-known/openid-configuration", 200, 20*time.Second); err != nil {
		p.Kill()
		return nil, fmt.Errorf("the example OpenID provider did not come up: %v\n%s", err, p.Log())
	}
	return o, nil
}

// WithOIDCExample is the part of a TestMain that runs the example provider
// once per test binary: it starts it on port with users and redirect URIs,
// calls run (with the provider, or nil and why there is none: the tests
// decide whether to skip), prints the end of the provider's log when run
// returns a non-zero exit code, and stops it. It returns run's exit code,
// or 1 when the provider is there but does not start.
func WithOIDCExample(port string, users []OIDCUser, redirectURIs []string, run func(o *OIDCExample, reason string) int) int {
	bin, reason := OIDCExampleBin()
	if bin == "" {
		return run(nil, reason)
	}
	logDir, err := os.MkdirTemp("", "tcauth-oidc-example-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(logDir)
	o, err := StartOIDCExample(bin, port, logDir, users, redirectURIs)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer o.Stop()
	code := run(o, "")
	if code != 0 {
		log := o.Log()
		if len(log) > 4000 {
			log = "…" + log[len(log)-4000:]
		}
		fmt.Fprintf(os.Stderr, "---- zitadel-oidc-example ----\n%s\n", log)
	}
	return code
}

// NeedPeer skips the test, or fails it under TCAUTH_REQUIRE_PEERS=1 (make
// test-integration sets it after installing the peers), when reason, why
// a peer program is missing, is not "".
func NeedPeer(t testing.TB, reason string) {
	t.Helper()
	if reason == "" {
		return
	}
	if os.Getenv("TCAUTH_REQUIRE_PEERS") == "1" {
		t.Fatalf("required peer missing: %s", reason)
	}
	t.Skip(reason)
}

// StateCounts is what a cluster stores, read from a backup: client ids
// and login records (kind and key, never a secret). Tests compare two
// of them to show that a refused request created nothing.
type StateCounts struct {
	Clients []string
	Logins  []string // "<kind> <key>"
}

// State reads node i's backup (GET /tcauth/cluster/snapshot, root).
func (c *Cluster) State(i int) (StateCounts, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Client(i, nil).DoRaw(ctx, http.MethodGet, "/tcauth/cluster/snapshot", nil, "", nil)
	if err != nil {
		return StateCounts{}, err
	}
	defer resp.Body.Close()
	var out StateCounts
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var line struct {
			Client *struct {
				ClientID string `json:"clientId"`
			} `json:"client"`
			Login *struct {
				Kind string `json:"kind"`
				Key  string `json:"key"`
			} `json:"login"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		if line.Client != nil {
			out.Clients = append(out.Clients, line.Client.ClientID)
		}
		if line.Login != nil {
			out.Logins = append(out.Logins, line.Login.Kind+" "+line.Login.Key)
		}
	}
	sort.Strings(out.Clients)
	sort.Strings(out.Logins)
	return out, sc.Err()
}
