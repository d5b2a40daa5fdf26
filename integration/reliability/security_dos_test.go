package reliability

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// Rows about one caller's bad input costing other callers nothing, run
// against sidecars of their own (fresh caches, as after a restart): bursts
// of malformed or random clientIds, and a client that fills the nonce
// store.
func init() { securityGroups = append(securityGroups, sidecarDoSRows) }

const dosRoutes = "routes:\n  - method: GET\n    path: /whoami\n    authenticated: true\n"

func sidecarDoSRows(t *testing.T, env *securityEnv) []hostile {
	c := env.c
	legit := c.CreateClient(t, env.leader, "esc/dos-legit", "notes:read:*")
	other := c.CreateClient(t, env.leader, "esc/dos-other", "notes:read:*")
	noScopes := c.CreateClient(t, env.leader, "esc/dos-noscopes", "esc:nothing") // no scope any route needs
	fresh := c.StartSidecar(t, "dos-fresh", "http://"+env.notes, dosRoutes)
	flooded := c.StartSidecar(t, "dos-flooded", "http://"+env.notes, dosRoutes, "--client-cache-size", "64")
	nonces := c.StartSidecar(t, "dos-nonces", "http://"+env.notes, dosRoutes, "--max-nonces", "200")

	return []hostile{
		{"sidecar: a burst of malformed clientIds, then an uncached client gets 200", func(t *testing.T) error {
			for i := 0; i < 30; i++ {
				id := []string{"bad id", "a,b", "ab*", "a;b"}[i%4]
				st, err := dosGet(nil, fresh.URL+"/whoami", rawHawkHeader(id))
				if err != nil {
					return err
				}
				if st != 401 {
					return fmt.Errorf("malformed id %q: %d, want 401", id, st)
				}
			}
			return dosWant(nil, fresh.URL+"/whoami", &legit, 200)
		}},

		{"sidecar: random unknown ids from one source neither evict a cached client nor block another source", func(t *testing.T) error {
			if err := dosWant(nil, flooded.URL+"/whoami", &legit, 200); err != nil {
				return fmt.Errorf("warming the cache: %w", err)
			}
			attacker := dosClientFrom("127.0.0.2")
			throttled := 0
			for i := 0; i < 300; i++ {
				creds := &protocol.Credentials{ClientID: fmt.Sprintf("esc/random-%d-%d", time.Now().UnixNano(), i), AccessToken: "guessed-token"}
				st, err := dosGet(attacker, flooded.URL+"/whoami", signFor(creds, flooded.URL+"/whoami"))
				if err != nil {
					return err
				}
				switch st {
				case 401:
				case 429:
					throttled++
				default:
					return fmt.Errorf("random id: %d, want 401 or 429", st)
				}
			}
			if throttled == 0 {
				return fmt.Errorf("300 random ids from one source were all looked up: no budget")
			}
			misses, err := metricValue(flooded.Admin, `tcauth_sidecar_cache_requests_total{cache="client",result="miss"}`)
			if err != nil {
				return err
			}
			if err := dosWant(nil, flooded.URL+"/whoami", &legit, 200); err != nil {
				return fmt.Errorf("cached client after the flood: %w", err)
			}
			after, err := metricValue(flooded.Admin, `tcauth_sidecar_cache_requests_total{cache="client",result="miss"}`)
			if err != nil {
				return err
			}
			if after != misses {
				return fmt.Errorf("the cached client was evicted by the flood (a cache miss)")
			}
			return dosWant(dosClientFrom("127.0.0.3"), flooded.URL+"/whoami", &other, 200)
		}},

		{"sidecar: a client filling the nonce store at the future edge does not lock others out", func(t *testing.T) error {
			future := time.Now().Add(protocol.DefaultSkew - 30*time.Second)
			for i := 0; i < 400; i++ {
				auth, err := protocol.SignRequest(noScopes, "GET", nonces.URL+"/whoami", protocol.SignOptions{Now: future, Nonce: "f" + strconv.Itoa(i)})
				if err != nil {
					return err
				}
				if _, err := dosGet(nil, nonces.URL+"/whoami", auth); err != nil {
					return err
				}
			}
			for _, creds := range []*protocol.Credentials{&legit, &other} {
				if err := dosWant(nil, nonces.URL+"/whoami", creds, 200); err != nil {
					return fmt.Errorf("%s after the flood: %w", creds.ClientID, err)
				}
			}
			return nil
		}},
	}
}

func rawHawkHeader(id string) string {
	return fmt.Sprintf(`Hawk id="%s", ts="%d", nonce="n%d", mac="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`, id, time.Now().Unix(), time.Now().UnixNano())
}

func signFor(creds *protocol.Credentials, url string) string {
	auth, _ := protocol.SignRequest(*creds, "GET", url, protocol.SignOptions{})
	return auth
}

// dosClientFrom makes connections from another loopback address, i.e.
// another source as far as the sidecar can tell.
func dosClientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 10 * time.Second}
}

func dosGet(c *http.Client, url, auth string) (int, error) {
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", auth)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func dosWant(c *http.Client, url string, creds *protocol.Credentials, want int) error {
	st, err := dosGet(c, url, signFor(creds, url))
	if err != nil {
		return err
	}
	if st != want {
		return fmt.Errorf("%s: %d, want %d", creds.ClientID, st, want)
	}
	return nil
}

// metricValue reads one series from a sidecar's /metrics.
func metricValue(admin, series string) (float64, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, nil // not yet incremented
}
