package reliability

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
)

// hostile is one row of the security table: an attack and what it must
// get. Every row counts as one hostile input tried.
type hostile struct {
	name string
	try  func(t *testing.T) error // nil error: refused as it must be
}

// securityEnv is what the rows of the security table may use: the
// cluster, its leader, the sidecar in front of the notes example and the
// two clients the table attacks with.
type securityEnv struct {
	c       *harness.Cluster
	leader  int
	notes   string // host:port of the notes example
	sidecar *harness.Sidecar
	limited protocol.Credentials // may manage esc/ clients and esc-* roles, read notes
	victim  protocol.Credentials // notes:read:x
}

// securityGroups are further groups of rows, each kept in a file of its
// own (security_*_test.go) and registered from an init function. A group
// may start processes of its own (sidecars with other routes, upstreams)
// with env.c; they are stopped with the test.
var securityGroups []func(t *testing.T, env *securityEnv) []hostile

// TestSecurity runs the security table against real processes on
// loopback: a three-node cluster, a sidecar and the notes example.
func TestSecurity(t *testing.T) {
	start := time.Now()
	c := harness.StartCluster(t, harness.ClusterConfig{})
	leader, err := c.Leader(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	notes := c.StartNotes(t)
	sc := c.StartSidecar(t, "sec-sidecar", "http://"+notes,
		"routes:\n  - method: GET\n    path: /whoami\n    authenticated: true\n  - method: GET\n    path: /notes/<name>\n    scopes: notes:read:<name>\n  - method: PUT\n    path: /notes/<name>\n    scopes: notes:write:<name>\n")

	// The attacker: may create and manage clients and roles under esc/,
	// and read notes — nothing more.
	limited := c.CreateClient(t, leader, "esc/limited",
		"auth:create-client:esc/*", "auth:update-client:esc/*", "auth:reset-access-token:esc/*", "auth:delete-client:esc/*",
		"auth:create-role:esc-*", "auth:update-role:esc-*", "notes:read:*")
	victim := c.CreateClient(t, leader, "esc/victim", "notes:read:x")
	if err := c.Client(leader, nil).Do(context.Background(), "PUT", "/roles/admin-role", nil, map[string]any{"description": "admins", "scopes": []string{"auth:*", "notes:*"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Client(leader, nil).Do(context.Background(), "PUT", "/roles/esc-existing", nil, map[string]any{"description": "x", "scopes": []string{"notes:read:x"}}, nil); err != nil {
		t.Fatal(err)
	}
	tokens := []string{limited.AccessToken, victim.AccessToken, sc.Creds.AccessToken}

	api := func(creds *protocol.Credentials, method, path string, body any) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.Client(leader, creds).Do(ctx, method, path, nil, body, nil)
	}
	// refused: the call fails with the given status, and then check()
	// shows nothing changed.
	refused := func(status int, call func() error, unchanged func() error) func(t *testing.T) error {
		return func(t *testing.T) error {
			err := call()
			var e interface{ Error() string }
			if err == nil {
				return errors.New("the call succeeded")
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", status)) {
				return fmt.Errorf("want HTTP %d, got %v", status, err)
			}
			_ = e
			if unchanged != nil {
				return unchanged()
			}
			return nil
		}
	}
	absent := func(path string) func() error {
		return func() error {
			if err := api(nil, "GET", path, nil); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
				return fmt.Errorf("%s exists after a refused write (%v)", path, err)
			}
			return nil
		}
	}
	scopesOf := func(path string, want ...string) func() error {
		return func() error {
			var out struct{ Scopes []string }
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Client(leader, nil).Do(ctx, "GET", path, nil, nil, &out); err != nil {
				return err
			}
			if strings.Join(out.Scopes, ",") != strings.Join(want, ",") {
				return fmt.Errorf("%s scopes changed to %v", path, out.Scopes)
			}
			return nil
		}
	}
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	lim := &limited
	sidecarGet := func(creds *protocol.Credentials, path string, hdr map[string]string, sign func(*http.Request)) (int, []byte) {
		req, _ := http.NewRequest("GET", sc.URL+path, nil)
		if creds != nil {
			auth, _ := protocol.SignRequest(*creds, "GET", sc.URL+path, protocol.SignOptions{})
			req.Header.Set("Authorization", auth)
		}
		if sign != nil {
			sign(req)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	status := func(want int, got int, body []byte) error {
		if got != want {
			return fmt.Errorf("status %d, want %d: %s", got, want, body)
		}
		return nil
	}
	signedAt := func(creds protocol.Credentials, method, url string, at time.Time) string {
		auth, err := protocol.SignRequest(creds, method, url, protocol.SignOptions{Now: at})
		if err != nil {
			t.Fatal(err)
		}
		return auth
	}
	cpCall := func(method, path, auth string, body []byte, hdr map[string]string) (int, []byte) {
		req, _ := http.NewRequest(method, c.Nodes[leader].URL()+"/api/auth/v1"+path, bytes.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, b
	}
	tcShape := func(want int) func(int, []byte) error {
		return func(got int, body []byte) error {
			if got != want {
				return fmt.Errorf("status %d, want %d: %.200s", got, want, body)
			}
			if want >= 400 && !bytes.Contains(body, []byte(`"code"`)) && want != 431 {
				return fmt.Errorf("not in Taskcluster's error shape: %.200s", body)
			}
			return nil
		}
	}
	cpURL := func(path string) string { return c.Nodes[leader].URL() + "/api/auth/v1" + path }

	table := []hostile{
		// Privilege escalation through every write endpoint.
		{"createClient with * (more than the caller holds)", refused(403, func() error {
			return api(lim, "PUT", "/clients/esc%2Fbig", map[string]any{"description": "x", "expires": exp, "scopes": []string{"*"}})
		}, absent("/clients/esc%2Fbig"))},
		{"createClient with one scope the caller lacks", refused(403, func() error {
			return api(lim, "PUT", "/clients/esc%2Fwriter", map[string]any{"description": "x", "expires": exp, "scopes": []string{"notes:write:x"}})
		}, absent("/clients/esc%2Fwriter"))},
		{"createClient outside the caller's prefix", refused(403, func() error {
			return api(lim, "PUT", "/clients/other%2Fx", map[string]any{"description": "x", "expires": exp, "scopes": []string{}})
		}, absent("/clients/other%2Fx"))},
		{"updateClient adding a scope the caller lacks", refused(403, func() error {
			return api(lim, "POST", "/clients/esc%2Fvictim", map[string]any{"description": "x", "expires": exp, "scopes": []string{"notes:read:x", "auth:*"}})
		}, scopesOf("/clients/esc%2Fvictim", "notes:read:x"))},
		{"createRole with *", refused(403, func() error {
			return api(lim, "PUT", "/roles/esc-big", map[string]any{"description": "x", "scopes": []string{"*"}})
		}, absent("/roles/esc-big"))},
		{"createRole assuming a powerful role", refused(403, func() error {
			return api(lim, "PUT", "/roles/esc-sneaky", map[string]any{"description": "x", "scopes": []string{"assume:admin-role"}})
		}, absent("/roles/esc-sneaky"))},
		{"updateRole to auth:*", refused(403, func() error {
			return api(lim, "POST", "/roles/esc-existing", map[string]any{"description": "x", "scopes": []string{"auth:*"}})
		}, scopesOf("/roles/esc-existing", "notes:read:x"))},
		{"resetAccessToken of the root client", refused(403, func() error {
			return api(lim, "POST", "/clients/static%2Ftaskcluster%2Froot/reset", nil)
		}, nil)},
		{"deleteClient of a static client", refused(403, func() error {
			return api(lim, "DELETE", "/clients/static%2Ftaskcluster%2Froot", nil)
		}, nil)},
		{"disableClient outside the caller's scopes", refused(403, func() error {
			return api(lim, "POST", "/clients/it%2Fsec-sidecar/disable", nil)
		}, nil)},
		{"deleteRole without the scope", refused(403, func() error {
			return api(lim, "DELETE", "/roles/admin-role", nil)
		}, scopesOf("/roles/admin-role", "auth:*", "notes:*"))},
		{"cluster join without the scope", refused(403, func() error {
			return api(lim, "POST", "/tcauth/cluster/members", map[string]any{"id": "evil", "raftAddr": "127.0.0.1:1"})
		}, nil)},
		{"cluster remove without the scope", refused(403, func() error {
			return api(lim, "DELETE", "/tcauth/cluster/members/"+c.Nodes[(leader+1)%3].ID, nil)
		}, nil)},
		{"snapshot download without the scope", refused(403, func() error { return api(lim, "GET", "/tcauth/cluster/snapshot", nil) }, nil)},
		{"client credentials (tokens) without the scope", refused(403, func() error {
			return api(lim, "GET", "/tcauth/clients/esc%2Fvictim/credentials", nil)
		}, nil)},
		{"temporary credentials beyond the issuer", func(t *testing.T) error {
			temp, err := protocol.CreateTemporaryCredentials(protocol.TemporaryOptions{Issuer: limited, Scopes: []string{"*"}, Expiry: time.Now().Add(time.Hour)})
			if err != nil {
				return err
			}
			return refused(401, func() error { return api(&temp, "GET", "/scopes/current", nil) }, nil)(t)
		}},
		{"named temporary credentials without auth:create-client:<name>", func(t *testing.T) error {
			temp, err := protocol.CreateTemporaryCredentials(protocol.TemporaryOptions{Issuer: limited, ClientID: "other/name", Scopes: []string{"notes:read:x"}, Expiry: time.Now().Add(time.Hour)})
			if err != nil {
				return err
			}
			return refused(401, func() error { return api(&temp, "GET", "/scopes/current", nil) }, nil)(t)
		}},
		{"authorizedScopes beyond the client", func(t *testing.T) error {
			l := limited
			l.AuthorizedScopes = []string{"*"}
			return refused(401, func() error { return api(&l, "GET", "/scopes/current", nil) }, nil)(t)
		}},

		// Forged identity at the sidecar.
		{"forged X-Taskcluster-Client-Id / -Scopes with valid credentials", func(t *testing.T) error {
			s, b := sidecarGet(&victim, "/whoami", map[string]string{"X-Taskcluster-Client-Id": "static/taskcluster/root", "X-Taskcluster-Scopes": `["*"]`}, nil)
			if s != 200 || !bytes.Contains(b, []byte(`"esc/victim"`)) || bytes.Contains(b, []byte(`"*"`)) {
				return fmt.Errorf("upstream saw forged identity: %d %s", s, b)
			}
			return nil
		}},
		{"identity header named in Connection (hop-by-hop removal trick)", func(t *testing.T) error {
			s, b := sidecarGet(&victim, "/whoami", map[string]string{"Connection": "X-Taskcluster-Client-Id"}, nil)
			if s != 200 || !bytes.Contains(b, []byte(`"esc/victim"`)) {
				return fmt.Errorf("identity lost or forged: %d %s", s, b)
			}
			return nil
		}},
		{"forged identity without credentials", func(t *testing.T) error {
			s, b := sidecarGet(nil, "/whoami", map[string]string{"X-Taskcluster-Client-Id": "static/taskcluster/root"}, nil)
			return status(401, s, b)
		}},

		// Replay and skew.
		{"replayed Hawk header at the sidecar", func(t *testing.T) error {
			auth := signedAt(victim, "GET", sc.URL+"/notes/x", time.Now())
			set := func(r *http.Request) { r.Header.Set("Authorization", auth) }
			if s, b := sidecarGet(nil, "/notes/x", nil, set); s == 401 {
				return fmt.Errorf("first use refused: %s", b)
			}
			s, b := sidecarGet(nil, "/notes/x", nil, set)
			return status(401, s, b)
		}},
		{"Hawk header 16 minutes old (control plane)", func(t *testing.T) error {
			return tcShape(401)(cpCall("GET", "/scopes/current", signedAt(victim, "GET", cpURL("/scopes/current"), time.Now().Add(-16*time.Minute)), nil, nil))
		}},
		{"Hawk header 16 minutes in the future (sidecar)", func(t *testing.T) error {
			auth := signedAt(victim, "GET", sc.URL+"/notes/x", time.Now().Add(16*time.Minute))
			s, b := sidecarGet(nil, "/notes/x", nil, func(r *http.Request) { r.Header.Set("Authorization", auth) })
			return status(401, s, b)
		}},
		{"Hawk header signed for another path", func(t *testing.T) error {
			auth := signedAt(victim, "GET", sc.URL+"/notes/y", time.Now())
			s, b := sidecarGet(nil, "/notes/x", nil, func(r *http.Request) { r.Header.Set("Authorization", auth) })
			return status(401, s, b)
		}},
		{"Hawk header with a wrong token", func(t *testing.T) error {
			bad := victim
			bad.AccessToken = strings.Repeat("A", len(bad.AccessToken))
			return tcShape(401)(cpCall("GET", "/scopes/current", signedAt(bad, "GET", cpURL("/scopes/current"), time.Now()), nil, nil))
		}},

		// Bewits.
		{"bewit past its expiry", func(t *testing.T) error {
			u, _ := protocol.SignedURL(victim, sc.URL+"/notes/x", time.Minute, time.Now().Add(-time.Hour))
			return getStatus(u, 401)
		}},
		{"bewit for another path", func(t *testing.T) error {
			u, _ := protocol.SignedURL(victim, sc.URL+"/notes/x", time.Minute, time.Now())
			return getStatus(strings.Replace(u, "/notes/x", "/notes/y", 1), 401)
		}},
		{"bewit on a non-GET request", func(t *testing.T) error {
			u, _ := protocol.SignedURL(victim, cpURL("/scopes/current"), time.Minute, time.Now())
			req, _ := http.NewRequest("POST", u, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}},

		// Oversized and malformed input.
		{"100 KiB Authorization header (control plane)", func(t *testing.T) error {
			s, b := cpCall("GET", "/scopes/current", "Hawk id=\""+strings.Repeat("a", 100<<10)+"\"", nil, nil)
			if s != 431 && s != 400 && s != 401 {
				return fmt.Errorf("status %d: %.100s", s, b)
			}
			return nil
		}},
		{"100 KiB Authorization header (sidecar)", func(t *testing.T) error {
			s, b := sidecarGet(nil, "/notes/x", map[string]string{"Authorization": "Hawk id=\"" + strings.Repeat("a", 100<<10) + "\""}, nil)
			if s != 431 && s != 400 && s != 401 {
				return fmt.Errorf("status %d: %.100s", s, b)
			}
			return nil
		}},
		{"11 MB request body to createClient", func(t *testing.T) error {
			body := []byte(`{"description":"` + strings.Repeat("x", 11<<20) + `"}`)
			auth, _ := protocol.SignRequest(*c.Root(), "PUT", cpURL("/clients/esc%2Fhuge"), protocol.SignOptions{})
			s, b := cpCall("PUT", "/clients/esc%2Fhuge", auth, body, nil)
			if s != 413 && s != 400 {
				return fmt.Errorf("status %d: %.200s", s, b)
			}
			return absent("/clients/esc%2Fhuge")()
		}},
		{"malformed JSON body", func(t *testing.T) error {
			auth, _ := protocol.SignRequest(*c.Root(), "PUT", cpURL("/roles/esc-json"), protocol.SignOptions{})
			if err := tcShape(400)(cpCall("PUT", "/roles/esc-json", auth, []byte(`{"description": "x", "scopes": [`), nil)); err != nil {
				return err
			}
			return absent("/roles/esc-json")()
		}},
		{"unknown field where the schema forbids it", func(t *testing.T) error {
			auth, _ := protocol.SignRequest(*c.Root(), "PUT", cpURL("/roles/esc-extra"), protocol.SignOptions{})
			if err := tcShape(400)(cpCall("PUT", "/roles/esc-extra", auth, []byte(`{"description":"x","scopes":[],"admin":true}`), nil)); err != nil {
				return err
			}
			return absent("/roles/esc-extra")()
		}},
		{"invalid characters in a scope", func(t *testing.T) error {
			auth, _ := protocol.SignRequest(*c.Root(), "PUT", cpURL("/roles/esc-chars"), protocol.SignOptions{})
			if err := tcShape(400)(cpCall("PUT", "/roles/esc-chars", auth, []byte("{\"description\":\"x\",\"scopes\":[\"a\\u0000b\"]}"), nil)); err != nil {
				return err
			}
			return absent("/roles/esc-chars")()
		}},
		{"role set that would expand without bound", func(t *testing.T) error {
			auth, _ := protocol.SignRequest(*c.Root(), "PUT", cpURL("/roles/esc-loop*"), protocol.SignOptions{})
			if err := tcShape(400)(cpCall("PUT", "/roles/esc-loop*", auth, []byte(`{"description":"x","scopes":["assume:esc-loop<..>x"]}`), nil)); err != nil {
				return err
			}
			return absent("/roles/esc-loop*")()
		}},
		{"slow-loris: headers never finished", func(t *testing.T) error {
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, addr := range []string{c.Nodes[leader].HTTPAddr, strings.TrimPrefix(sc.URL, "http://")} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = slowLoris(addr, 20*time.Second)
				}()
			}
			wg.Wait()
			return errors.Join(errs...)
		}},

		// Raft transport.
		{"Raft port: TLS without a client certificate", func(t *testing.T) error {
			return raftRefuses(c, leader, nil)
		}},
		{"Raft port: client certificate from another CA", func(t *testing.T) error {
			other := filepath.Join(t.TempDir(), "pki")
			if out, err := exec.Command(c.Bin, "cluster", "pki", "--dir", other, "n1").CombinedOutput(); err != nil {
				return fmt.Errorf("pki: %v %s", err, out)
			}
			cert, err := tls.LoadX509KeyPair(filepath.Join(other, "n1.pem"), filepath.Join(other, "n1-key.pem"))
			if err != nil {
				return err
			}
			return raftRefuses(c, leader, &cert)
		}},
		{"Raft port: plain TCP garbage", func(t *testing.T) error {
			conn, err := net.DialTimeout("tcp", c.Nodes[leader].RaftAddr, 5*time.Second)
			if err != nil {
				return err
			}
			_, _ = conn.Write(bytes.Repeat([]byte{0x01, 0xff, 0x00}, 4096))
			conn.Close()
			_, err = c.Leader(10 * time.Second)
			return err
		}},

		// Secrets.
		{"tokens compared in constant time (source check)", func(t *testing.T) error { return constantTimeCheck() }},
	}

	env := &securityEnv{c: c, leader: leader, notes: notes, sidecar: sc, limited: limited, victim: victim}
	for _, group := range securityGroups {
		table = append(table, group(t, env)...)
	}
	for _, h := range table {
		if err := h.try(t); err != nil {
			t.Errorf("%s: %v", h.name, err)
		}
	}

	// Nothing above may have hurt the cluster.
	if _, err := c.Leader(20 * time.Second); err != nil {
		t.Errorf("the cluster is unhealthy after the hostile inputs: %v", err)
	}
	for _, n := range c.Nodes {
		n.Stop()
	}
	sc.Stop()
	scanned, err := scanTokens(c.Dir, tokens)
	if err != nil {
		t.Error(err)
	}
	t.Logf("%d hostile inputs tried; %d files scanned for plaintext tokens", len(table)+1, scanned)
	countCrashes(c)
	record(summaryRow{name: "security table", hostile: len(table) + 1, duration: time.Since(start), failed: t.Failed()})
}

func getStatus(url string, want int) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, want)
	}
	return nil
}

// slowLoris opens a connection, sends half a request line's headers and
// waits: the server must close the connection within limit.
func slowLoris(addr string, limit time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /api/auth/v1/ping HTTP/1.1\r\nHost: x\r\nX-Slow: ")); err != nil {
		return err
	}
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	start := time.Now()
	_, err = bufio.NewReader(conn).ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%s kept a half-sent request open for %v", addr, limit)
	}
	_ = start
	return nil
}

// raftRefuses dials the leader's Raft port over TLS with cert (nil: none)
// and expects the handshake or the first exchange to fail.
func raftRefuses(c *harness.Cluster, i int, cert *tls.Certificate) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(harness.ReadFile(nilT{}, filepath.Join(c.Dir, "pki", "ca.pem")))
	cfg := &tls.Config{RootCAs: pool, ServerName: "n1", InsecureSkipVerify: true} // the server's identity is not what is tested
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", c.Nodes[i].RaftAddr, cfg)
	if err != nil {
		return nil // refused at the handshake
	}
	defer conn.Close()
	// TLS 1.3: the server's verdict on the client certificate arrives
	// after the client's handshake completes; read to see it.
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Write([]byte{0})
	_, err = conn.Read(make([]byte, 1))
	if err == nil {
		return errors.New("the Raft port talked to a peer without a valid certificate")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("the Raft port kept a connection without a valid certificate open")
	}
	return nil
}

// nilT lets ReadFile be used outside a test's goroutine: it panics, which
// the table reports as a crash of the test itself.
type nilT struct{ testing.TB }

func (nilT) Helper()                   {}
func (nilT) Fatal(args ...any)         { panic(fmt.Sprint(args...)) }
func (nilT) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

// scanTokens fails if any token occurs in a file under dir (data
// directories, bolt files, snapshots, logs).
func scanTokens(dir string, tokens []string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, tok := range tokens {
			if tok != "" && bytes.Contains(b, []byte(tok)) {
				return fmt.Errorf("plaintext access token in %s", path)
			}
		}
		return nil
	})
	if n < 10 {
		return n, fmt.Errorf("only %d files scanned under %s", n, dir)
	}
	return n, err
}

// secretName matches identifiers that hold MACs, hashes or tokens.
var secretName = regexp.MustCompile(`(?i)(mac|accesstoken|token|secret|signature|hash)$`)

// notSecret lists files whose token comparisons are not of secrets, and why.
var notSecret = map[string]string{
	"controlplane/hashids.go": "pagination continuationTokens: public, opaque, carry no authority",
}

// constantTimeCheck parses the packages that handle secrets and reports
// any == or != between two non-constant operands one of which is named
// like a secret: those must go through subtle.ConstantTimeCompare or
// hmac.Equal.
func constantTimeCheck() error {
	_, here, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(here), "..", "..")
	var found []string
	fset := token.NewFileSet()
	for _, pkg := range []string{"protocol", "controlplane", "sidecar", "raftstore"} {
		files, _ := filepath.Glob(filepath.Join(root, pkg, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(file, func(n ast.Node) bool {
				be, ok := n.(*ast.BinaryExpr)
				if !ok || (be.Op != token.EQL && be.Op != token.NEQ) {
					return true
				}
				if isConst(be.X) || isConst(be.Y) {
					return true
				}
				if secretName.MatchString(name(be.X)) || secretName.MatchString(name(be.Y)) {
					pos := fset.Position(be.Pos())
					rel, _ := filepath.Rel(root, pos.Filename)
					if _, ok := notSecret[rel]; !ok {
						found = append(found, pos.String())
					}
				}
				return true
			})
		}
	}
	if len(found) > 0 {
		return fmt.Errorf("secrets compared with ==/!= at %s", strings.Join(found, ", "))
	}
	return nil
}

func isConst(e ast.Expr) bool {
	switch v := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return v.Name == "nil" || v.Name == "true" || v.Name == "false"
	case *ast.CallExpr:
		if id, ok := v.Fun.(*ast.Ident); ok && id.Name == "len" {
			return true
		}
	}
	return false
}

func name(e ast.Expr) string {
	switch v := e.(type) {
	case *ast.Ident:
		return v.Name
	case *ast.SelectorExpr:
		return v.Sel.Name
	case *ast.IndexExpr:
		return name(v.X)
	}
	return ""
}
