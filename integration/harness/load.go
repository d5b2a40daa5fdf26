package harness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// Load is traffic for a rolling procedure (an upgrade, a keyring
// rotation): a writer creating clients (and, with ResetEvery, resetting
// some of them) and readers authenticating with them and with fixed
// clients, against the nodes in service, as callers behind a load
// balancer that follows readyz: a node leaves the set (SetUp false)
// before it is stopped and comes back once ready.
type Load struct {
	C *Cluster
	// Prefix names the writer's clients (Prefix + "w-<seq>").
	Prefix string
	// Readers are fixed clients the readers use besides the writer's,
	// made before the procedure starts.
	Readers []*protocol.Credentials
	// ResetEvery: every ResetEvery-th client written is kept apart (no
	// reader uses it) and its access token is reset by the writer from
	// then on, in turn with creating. 0: no resets.
	ResetEvery int

	mu  sync.Mutex
	up  map[int]bool
	ack map[string]string // acknowledged clientId → its current accessToken
	// uncertain are clients whose last reset may or may not have
	// committed: present, but with an unknown token.
	uncertain map[string]bool
	resetPool []string
	// usable are acknowledged clients in order, with when: readers use
	// those older than LoadSettle only. A follower that is caught up is
	// still replication lag behind (raftstore/DESIGN.md "Caught up"), so a
	// client used within milliseconds of its creation can be unknown
	// there; that is not what these tests are about.
	usable []usableClient

	Refused, Failed, Auths, Writes, Resets atomic.Int64
	Msgs                                   chan string
}

type usableClient struct {
	creds protocol.Credentials
	at    time.Time
}

// LoadSettle is how old a written client must be before readers use it.
const LoadSettle = time.Second

// NewLoad makes a load on every node of c, all in service.
func NewLoad(c *Cluster, prefix string, readers ...*protocol.Credentials) *Load {
	l := &Load{C: c, Prefix: prefix, Readers: readers, up: map[int]bool{}, ack: map[string]string{},
		uncertain: map[string]bool{}, Msgs: make(chan string, 20)}
	for i := range c.Nodes {
		l.up[i] = true
	}
	return l
}

// SetUp puts node i in or out of service.
func (l *Load) SetUp(i int, on bool) { l.mu.Lock(); l.up[i] = on; l.mu.Unlock() }

// Acknowledged is every acknowledged client with its current token
// (clients whose last reset is of unknown outcome have "").
func (l *Load) Acknowledged() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]string, len(l.ack))
	for id, tok := range l.ack {
		if l.uncertain[id] {
			tok = ""
		}
		out[id] = tok
	}
	return out
}

func (l *Load) pick() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []int
	for i, on := range l.up {
		if on {
			ids = append(ids, i)
		}
	}
	rand.Shuffle(len(ids), func(a, b int) { ids[a], ids[b] = ids[b], ids[a] })
	return ids
}

func (l *Load) note(format string, args ...any) {
	select {
	case l.Msgs <- fmt.Sprintf(format, args...):
	default:
	}
}

// send tries the nodes in service until one answers; only "not applied"
// is safe to send again. It reports whether the call was acknowledged and
// whether its outcome is unknown.
func (l *Load) send(ctx context.Context, method, path string, body, out any) (ok, unknown bool) {
	for _, i := range l.pick() {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := l.C.Client(i, nil).Do(cctx, method, path, nil, body, out)
		cancel()
		if err == nil {
			return true, false
		}
		var apiErr *tcclient.Error
		if !errors.As(err, &apiErr) || apiErr.Header.Get("X-Tcauth-Not-Applied") != "true" {
			return false, true
		}
	}
	return false, false
}

func (l *Load) write(ctx context.Context, seq int) {
	id := l.Prefix + "w-" + strconv.Itoa(seq)
	body := map[string]any{"description": "load", "expires": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"scopes": []string{"auth:current-scopes", "load:" + strconv.Itoa(seq)}}
	var out struct{ AccessToken string }
	// A create of unknown outcome is abandoned: never counted as acknowledged.
	if ok, _ := l.send(ctx, http.MethodPut, "/clients/"+url.PathEscape(id), body, &out); !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ack[id] = out.AccessToken
	l.Writes.Add(1)
	if l.ResetEvery > 0 && seq%l.ResetEvery == 0 {
		l.resetPool = append(l.resetPool, id)
		return
	}
	l.usable = append(l.usable, usableClient{protocol.Credentials{ClientID: id, AccessToken: out.AccessToken}, time.Now()})
}

func (l *Load) reset(ctx context.Context) {
	l.mu.Lock()
	if len(l.resetPool) == 0 {
		l.mu.Unlock()
		return
	}
	id := l.resetPool[rand.IntN(len(l.resetPool))]
	l.mu.Unlock()
	var out struct{ AccessToken string }
	ok, unknown := l.send(ctx, http.MethodPost, "/clients/"+url.PathEscape(id)+"/reset", nil, &out)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case ok:
		l.ack[id] = out.AccessToken
		delete(l.uncertain, id)
		l.Resets.Add(1)
	case unknown:
		l.uncertain[id] = true
	}
}

// auth is one caller: it tries up to three nodes in service; refused
// (401/403) is a refused valid caller, no answer anywhere a failed one.
func (l *Load) auth(ctx context.Context, creds *protocol.Credentials) {
	ids := l.pick()
	if len(ids) > 3 {
		ids = ids[:3]
	}
	for _, i := range ids {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := l.C.Client(i, creds).Do(cctx, http.MethodGet, "/scopes/current", nil, nil, nil)
		cancel()
		if err == nil {
			l.Auths.Add(1)
			return
		}
		var apiErr *tcclient.Error
		if errors.As(err, &apiErr) && (apiErr.StatusCode == 401 || apiErr.StatusCode == 403) {
			l.Refused.Add(1)
			l.note("%s %s refused by %s: %v", time.Now().Format(time.RFC3339Nano), creds.ClientID, l.C.Nodes[i].ID, err)
			return
		}
		if ctx.Err() != nil {
			return
		}
	}
	l.Failed.Add(1)
	l.note("%s: no node answered", creds.ClientID)
}

// Run starts the writer and three readers until ctx ends.
func (l *Load) Run(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seq := 0; ctx.Err() == nil; seq++ {
			l.write(ctx, seq)
			if l.ResetEvery > 0 {
				l.reset(ctx)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				l.auth(ctx, l.nextReader())
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	return &wg
}

// nextReader is mostly a random settled written client, else a fixed one.
func (l *Load) nextReader() *protocol.Credentials {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.usable)
	for n > 0 && time.Since(l.usable[n-1].at) < LoadSettle {
		n--
	}
	if n > 0 && (len(l.Readers) == 0 || rand.IntN(4) != 0) {
		return &l.usable[rand.IntN(n)].creds
	}
	if len(l.Readers) == 0 {
		return l.C.Root()
	}
	return l.Readers[rand.IntN(len(l.Readers))]
}

// Report logs the load's figures and messages and fails t if a valid
// caller was refused or unanswered, or if there was too little load to
// mean anything. Call it after the load has stopped.
func (l *Load) Report(t testing.TB, minWrites, minAuths int64) {
	t.Helper()
	close(l.Msgs)
	for m := range l.Msgs {
		t.Log(m)
	}
	Summary(t, "load: %d acknowledged writes, %d resets, %d authentications, %d refused, %d unanswered",
		l.Writes.Load(), l.Resets.Load(), l.Auths.Load(), l.Refused.Load(), l.Failed.Load())
	if l.Refused.Load() != 0 || l.Failed.Load() != 0 {
		t.Fatalf("%d valid callers refused and %d unanswered", l.Refused.Load(), l.Failed.Load())
	}
	if l.Writes.Load() < minWrites || l.Auths.Load() < minAuths {
		t.Fatalf("too little load to mean anything: %d writes, %d authentications", l.Writes.Load(), l.Auths.Load())
	}
}

// CheckAcknowledged fails t unless every acknowledged client is in every
// node's state.
func (c *Cluster) CheckAcknowledged(t testing.TB, ack map[string]string) {
	t.Helper()
	for i, n := range c.Nodes {
		var missing []string
		err := Eventually(30*time.Second, func() error {
			st, err := c.State(i)
			if err != nil {
				return err
			}
			have := map[string]bool{}
			for _, id := range st.Clients {
				have[id] = true
			}
			missing = missing[:0]
			for id := range ack {
				if !have[id] {
					missing = append(missing, id)
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("%s lacks %d of %d acknowledged clients, e.g. %s", n.ID, len(missing), len(ack), missing[0])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
