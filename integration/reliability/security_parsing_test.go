package reliability

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// The sidecar and the service behind it must read a request the same
// way: these rows send requests that one reading would authorise and the
// other would serve differently (encoded separators, duplicate JSON
// members, trailers, upgrades), a slow body, and a Hawk header replayed
// against another service's sidecar.
func init() { securityGroups = append(securityGroups, sidecarParsingRows) }

const parsingRoutes = `routes:
  - method: GET
    path: /fs/<path*>
    scopes: files:read:<path>
  - method: GET
    path: /up
    public: true
  - method: PUT
    path: /echo
    scopes: notes:read:x
  - method: POST
    path: /team
    body: [team]
    scopes: notes:read:<team>
`

// parsingUpstream is the service behind the sidecar: a stock
// http.FileServer under /fs (public/ok.txt and secret.txt), an endpoint
// that switches to any protocol it is asked for (/up), and one that echoes
// body, trailers and identity (/echo, /team).
func parsingUpstream(t *testing.T) string {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "public"), 0o700); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "public", "ok.txt"), []byte("public file\n"), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("SECRET\n"), 0o600)
	mux := http.NewServeMux()
	mux.Handle("/fs/", http.StripPrefix("/fs", http.FileServer(http.Dir(dir))))
	mux.HandleFunc("/up", func(w http.ResponseWriter, r *http.Request) {
		proto := r.Header.Get("Upgrade")
		if proto == "" {
			_, _ = io.WriteString(w, "no upgrade")
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + proto + "\r\n\r\n")
		_ = buf.Flush()
		_, _ = io.Copy(conn, buf)
	})
	echo := func(w http.ResponseWriter, r *http.Request) {
		var team struct{ Team any }
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &team)
		_ = json.NewEncoder(w).Encode(map[string]any{"body": string(body), "trailer": r.Trailer,
			"clientId": r.Header.Get("X-Taskcluster-Client-Id"), "team": team.Team})
	}
	mux.HandleFunc("/echo", echo)
	mux.HandleFunc("/team", echo)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func sidecarParsingRows(t *testing.T, env *securityEnv) []hostile {
	up := parsingUpstream(t)
	sc := env.c.StartSidecar(t, "sec-parsing", up, parsingRoutes, "--body-read-timeout", "1s")
	pinned := env.c.StartSidecar(t, "sec-pinned", "http://"+env.notes,
		"routes:\n  - method: GET\n    path: /notes/<name>\n    scopes: notes:read:<name>\n",
		"--public-host", "notes-a.test:443")
	files := env.c.CreateClient(t, env.leader, "esc/files", "files:read:public/*")
	addr := strings.TrimPrefix(sc.URL, "http://")
	client := &http.Client{Timeout: 10 * time.Second}

	get := func(creds *protocol.Credentials, base, path string) (int, []byte, error) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if creds != nil {
			auth, err := protocol.SignRequest(*creds, "GET", base+path, protocol.SignOptions{})
			if err != nil {
				return 0, nil, err
			}
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, nil
	}
	refusedInput := func(status int, body []byte, want int) error {
		if bytes.Contains(body, []byte("SECRET")) {
			return errors.New("secret.txt was served")
		}
		if status != want || !bytes.Contains(body, []byte(`"code"`)) {
			return fmt.Errorf("status %d, want %d in Taskcluster's shape: %.200s", status, want, body)
		}
		return nil
	}

	return []hostile{
		{"sidecar: ..%2F in a captured path (scope files:read:public/../secret.txt)", func(t *testing.T) error {
			if st, b, err := get(&files, sc.URL, "/fs/public/ok.txt"); err != nil || st != 200 {
				return fmt.Errorf("the allowed file: %d %v %s", st, err, b)
			}
			st, b, err := get(&files, sc.URL, "/fs/public/..%2Fsecret.txt")
			if err != nil {
				return err
			}
			return refusedInput(st, b, 400)
		}},
		{"sidecar: %5C, %252F, %2e%2e, //, ..; and NUL in a captured path", func(t *testing.T) error {
			for _, p := range []string{"/fs/public/..%5Csecret.txt", "/fs/public/..%252Fsecret.txt", "/fs/public/%2e%2e/secret.txt",
				"/fs/public//../secret.txt", "/fs/public/..;/secret.txt", "/fs/public/ok.txt%00"} {
				st, b, err := get(&files, sc.URL, p)
				if err != nil {
					return err
				}
				if err := refusedInput(st, b, 400); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
			}
			return nil
		}},
		{"sidecar: duplicate and case-variant JSON members in a body-parameter route", func(t *testing.T) error {
			for _, body := range []string{`{"team":"x","Team":"y"}`, `{"team":"x","team":"y"}`, `{"TEAM":"y"}`, "{\"team\":\"x\xff\"}", `["x"]`} {
				req, _ := http.NewRequest("POST", sc.URL+"/team", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				auth, _ := protocol.SignRequest(env.victim, "POST", sc.URL+"/team", protocol.SignOptions{})
				req.Header.Set("Authorization", auth)
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err := refusedInput(resp.StatusCode, b, 400); err != nil {
					return fmt.Errorf("%s: %w", body, err)
				}
			}
			return nil
		}},
		{"sidecar: identity headers as trailers of a chunked body (hashed: buffered; unhashed: streamed)", func(t *testing.T) error {
			for _, hashed := range []bool{true, false} {
				if err := trailerRow(client, env.victim, sc.URL+"/echo", hashed); err != nil {
					return fmt.Errorf("hashed=%v: %w", hashed, err)
				}
			}
			return nil
		}},
		{"sidecar: anonymous Upgrade: h2c on a public route", func(t *testing.T) error {
			resp, err := rawExchange(addr, "GET /up HTTP/1.1\r\nHost: "+addr+"\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n", 5*time.Second)
			if err != nil {
				return err
			}
			if resp.StatusCode == http.StatusSwitchingProtocols {
				return errors.New("the sidecar tunnelled an undeclared h2c upgrade")
			}
			return nil
		}},
		{"sidecar: unauthenticated 1 byte/s body to a body-parameter route", func(t *testing.T) error {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return err
			}
			defer conn.Close()
			start := time.Now()
			_, _ = conn.Write([]byte("POST /team HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nContent-Length: 30\r\n\r\n{"))
			done := make(chan struct{})
			defer close(done)
			go func() {
				for i := 0; i < 29; i++ {
					select {
					case <-done:
						return
					case <-time.After(time.Second):
					}
					if _, err := conn.Write([]byte(" ")); err != nil {
						return
					}
				}
			}()
			_ = conn.SetReadDeadline(time.Now().Add(8 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				return fmt.Errorf("no answer within %v: %v", time.Since(start), err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusRequestTimeout || !bytes.Contains(b, []byte(`"RequestTimeout"`)) {
				return fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
			}
			if d := time.Since(start); d > 4*time.Second {
				return fmt.Errorf("answered only after %v", d)
			}
			return nil
		}},
		{"sidecar: Hawk header signed for another service replayed at a pinned sidecar", func(t *testing.T) error {
			send := func(signedFor, host string) (int, error) {
				auth, _ := protocol.SignRequest(env.victim, "GET", "https://"+signedFor+"/notes/x", protocol.SignOptions{})
				req, _ := http.NewRequest("GET", pinned.URL+"/notes/x", nil)
				req.Header.Set("Authorization", auth)
				req.Host = host
				resp, err := client.Do(req)
				if err != nil {
					return 0, err
				}
				resp.Body.Close()
				return resp.StatusCode, nil
			}
			for _, c := range []struct {
				signedFor, host string
				want            int
			}{
				{"notes-a.test", "notes-a.test", 200}, // what the pinned host is for
				{"notes-b.test", "notes-b.test", 421}, // another service's header, its Host
				{"notes-b.test", "notes-a.test", 401}, // another service's header, our Host
				{strings.TrimPrefix(pinned.URL, "http://"), strings.TrimPrefix(pinned.URL, "http://"), 421},
			} {
				st, err := send(c.signedFor, c.host)
				if err != nil {
					return err
				}
				if st != c.want && !(c.want == 200 && st == 404) { // 404: no such note, but authorised
					return fmt.Errorf("signed for %s, Host %s: %d, want %d", c.signedFor, c.host, st, c.want)
				}
			}
			return nil
		}},
	}
}

// trailerRow sends a chunked PUT whose trailers claim the root identity
// and checks what the upstream saw.
func trailerRow(client *http.Client, creds protocol.Credentials, url string, hashed bool) error {
	body := "payload"
	auth, _ := protocol.SignRequest(creds, "PUT", url, protocol.SignOptions{Payload: []byte(body), HasPayload: hashed})
	req, _ := http.NewRequest("PUT", url, io.MultiReader(strings.NewReader(body)))
	req.ContentLength = -1
	req.Header.Set("Authorization", auth)
	req.Trailer = http.Header{"X-Taskcluster-Client-Id": {"static/taskcluster/root"}, "X-Taskcluster-Scopes": {`["*"]`}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var got struct {
		Body     string
		Trailer  http.Header
		ClientID string
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		return fmt.Errorf("status %d: %v", resp.StatusCode, err)
	}
	if len(got.Trailer) > 0 || got.ClientID != creds.ClientID || got.Body != body {
		return fmt.Errorf("the upstream saw trailers %v, client %q, body %q", got.Trailer, got.ClientID, got.Body)
	}
	return nil
}

// rawExchange writes a request byte for byte and reads the response head.
func rawExchange(addr, request string, timeout time.Duration) (*http.Response, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte(request)); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return resp, nil
}
