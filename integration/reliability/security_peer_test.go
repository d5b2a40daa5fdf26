package reliability

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
)

func init() { securityGroups = append(securityGroups, peerOnlyRows) }

// peerCall sends one request to a node, Hawk-signed with creds (nil:
// anonymous), with extra headers, and returns status and body.
func peerCall(base string, creds *protocol.Credentials, method, path, body string, hdr map[string]string) (int, []byte, error) {
	url := base + "/api/auth/v1" + path
	req, err := http.NewRequest(method, url, bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if creds != nil {
		auth, err := protocol.SignRequest(*creds, method, url, protocol.SignOptions{})
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", auth)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, nil
}

// peerOnlyRows attack the control plane's peer-only and forwarded paths:
// reportLastUsed (nodes' lastDateUsed batches) and every write a follower
// forwards to the leader. They run against a cluster of their own that
// commits lastDateUsed batches every second, so "nothing changed" is
// checked after batches would have been committed. Every caller here is
// on loopback, inside the nodes' --trusted-proxy range: being a trusted
// proxy must not make anyone a peer.
func peerOnlyRows(t *testing.T, _ *securityEnv) []hostile {
	c := harness.StartCluster(t, harness.ClusterConfig{ExtraArgs: []string{"--last-used-interval", "1s"}})
	leader, err := c.Leader(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	follower := (leader + 1) % len(c.Nodes)
	lURL, fURL := c.Nodes[leader].URL(), c.Nodes[follower].URL()
	limited := c.CreateClient(t, leader, "esc/limited", "auth:create-client:esc/*", "auth:delete-client:esc/*", "auth:update-client:esc/*")
	c.CreateClient(t, leader, "esc/victim", "notes:read:x")
	c.CreateClient(t, leader, "keep/me", "notes:read:x")
	lastUsed := func(id string) (string, error) {
		var out struct{ LastDateUsed string }
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := c.Client(leader, nil).Do(ctx, "GET", "/clients/"+strings.ReplaceAll(id, "/", "%2F"), nil, nil, &out)
		return out.LastDateUsed, err
	}
	before := map[string]string{}
	for _, id := range []string{"esc/victim", "esc/limited", harness.RootClientID} {
		if before[id], err = lastUsed(id); err != nil {
			t.Fatal(err)
		}
	}
	forgedBatch := `{"lastUsed":{"esc/victim":"2099-01-01T00:00:00.000Z","esc/limited":"2099-01-01T00:00:00.000Z","static/taskcluster/root":"2099-01-01T00:00:00.000Z"}}`
	// refused: the call gets status (and, for 403, the Taskcluster error
	// shape); anything else is a failed row.
	refused := func(status int, base string, creds *protocol.Credentials, method, path, body string, hdr map[string]string) func(*testing.T) error {
		return func(*testing.T) error {
			got, b, err := peerCall(base, creds, method, path, body, hdr)
			if err != nil {
				return err
			}
			if got != status {
				return fmt.Errorf("HTTP %d, want %d: %s", got, status, b)
			}
			if !bytes.Contains(b, []byte(`"code"`)) {
				return fmt.Errorf("HTTP %d without a Taskcluster error body: %s", got, b)
			}
			return nil
		}
	}
	forged := []map[string]string{
		nil,
		{"X-Tcauth-Forwarded": "1"},
		{"X-Tcauth-Peer": "1"},
		{"X-Tcauth-Peer": "AQAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "X-Tcauth-Forwarded": "AQAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{"X-Tcauth-Forwarded": "1", "X-Forwarded-For": "127.0.0.1", "X-Tcauth-Applied-Index": "1"},
	}
	var rows []hostile
	nodes := []struct{ name, url string }{{"follower", fURL}, {"leader", lURL}}
	for _, n := range nodes {
		for i, h := range forged {
			rows = append(rows, hostile{fmt.Sprintf("peer-only: anonymous reportLastUsed to the %s (forged peer headers #%d)", n.name, i),
				refused(403, n.url, nil, "POST", "/tcauth/internal/last-used", forgedBatch, h)})
		}
		rows = append(rows, hostile{"peer-only: root's Hawk credentials are no peer ticket (" + n.name + ")",
			refused(403, n.url, c.Root(), "POST", "/tcauth/internal/last-used", forgedBatch, map[string]string{"X-Tcauth-Forwarded": "1"})})
	}
	lim := &limited
	type write struct{ name, method, path, body string }
	writes := []write{
		{"createClient outside its prefix", "PUT", "/clients/other%2Fx", `{"description":"d","expires":"2099-01-01T00:00:00.000Z","scopes":[]}`},
		{"createClient with scopes it lacks", "PUT", "/clients/esc%2Fadmin", `{"description":"d","expires":"2099-01-01T00:00:00.000Z","scopes":["*"]}`},
		{"deleteClient outside its prefix", "DELETE", "/clients/keep%2Fme", ""},
		{"resetAccessToken outside its prefix", "POST", "/clients/keep%2Fme/reset", ""},
		{"createRole", "PUT", "/roles/esc-admin", `{"description":"d","scopes":["*"]}`},
		{"cluster join", "POST", "/tcauth/cluster/members", `{"id":"evil","raftAddr":"127.0.0.1:1"}`},
		{"cluster remove", "DELETE", "/tcauth/cluster/members/" + c.Nodes[leader].ID, ""},
		{"cluster transfer-leadership", "POST", "/tcauth/cluster/transfer-leadership", ""},
		{"cluster snapshot save", "GET", "/tcauth/cluster/snapshot", ""},
		{"cluster snapshot restore", "PUT", "/tcauth/cluster/snapshot", "garbage"},
		{"keyring reseal", "POST", "/tcauth/keyring/reseal", ""},
	}
	for _, w := range writes {
		for _, h := range forged[:2] {
			marker := ""
			if h != nil {
				marker = ", forged forward marker"
			}
			rows = append(rows,
				hostile{"peer-only: limited client's " + w.name + " through a follower" + marker, refused(403, fURL, lim, w.method, w.path, w.body, h)},
				hostile{"peer-only: anonymous " + w.name + " through a follower" + marker, refused(403, fURL, nil, w.method, w.path, w.body, h)},
				hostile{"peer-only: anonymous " + w.name + " at the leader" + marker, refused(403, lURL, nil, w.method, w.path, w.body, h)})
		}
	}
	rows = append(rows, hostile{"peer-only: bad credentials through a follower refused", refused(401, fURL,
		&protocol.Credentials{ClientID: limited.ClientID, AccessToken: "wrong-token-wrong-token-wrong-token-wrong-0"},
		"PUT", "/clients/esc%2Fbad", `{"description":"d","expires":"2099-01-01T00:00:00.000Z","scopes":[]}`, nil)})
	// A forged marker must not make a follower answer for the leader
	// (503 "no leader") either: it is ignored and the write forwarded.
	rows = append(rows, hostile{"peer-only: forged forward marker on a follower is ignored", func(*testing.T) error {
		got, b, err := peerCall(fURL, lim, "PUT", "/clients/esc%2Fok", `{"description":"d","expires":"2099-01-01T00:00:00.000Z","scopes":[]}`,
			map[string]string{"X-Tcauth-Forwarded": "1"})
		if err == nil && got != 200 {
			err = fmt.Errorf("HTTP %d: %s", got, b)
		}
		return err
	}})
	rows = append(rows, hostile{"peer-only: nothing changed (lastDateUsed, clients, members, leader)", func(*testing.T) error {
		time.Sleep(3 * time.Second) // three batch intervals
		for id, was := range before {
			now, err := lastUsed(id)
			if err != nil {
				return err
			}
			if now != was {
				return fmt.Errorf("%s lastDateUsed moved from %s to %s", id, was, now)
			}
		}
		for _, path := range []string{"/clients/other%2Fx", "/clients/esc%2Fadmin", "/roles/esc-admin", "/clients/esc%2Fbad"} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := c.Client(leader, nil).Do(ctx, "GET", path, nil, nil, nil)
			cancel()
			if err == nil || !strings.Contains(err.Error(), "HTTP 404") {
				return fmt.Errorf("%s exists after refused writes (%v)", path, err)
			}
		}
		if _, err := lastUsed("keep/me"); err != nil {
			return fmt.Errorf("keep/me: %v", err)
		}
		peers, err := c.Peers(leader)
		if err != nil {
			return err
		}
		if len(peers) != len(c.Nodes) {
			return fmt.Errorf("membership changed: %v", peers)
		}
		if now, err := c.Leader(10 * time.Second); err != nil || now != leader {
			return fmt.Errorf("leader moved from %d to %d (%v)", leader, now, err)
		}
		return nil
	}})
	return rows
}
