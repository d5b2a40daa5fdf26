// Package events tests the publication of change events end to end: three
// real control-plane processes started with --events-config and a real
// RabbitMQ (rabbitmq-server on a private port, data directory and node
// name; TCAUTH_RABBITMQ). A consumer with a durable queue bound "#" to the
// six auth exchanges checks that every acknowledged change arrives, in
// order, while the leader is killed and the broker stopped mid-stream.
package events

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane/events"
	"github.com/tcauth/tcauth/controlplane/events/rabbitmqtest"
	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
)

const prefix = events.DefaultExchangePrefix

// change is one acknowledged write: the exchange it must be published
// to and the entity id.
type change struct{ exchange, id string }

// writer makes a stream of client and role writes through one node and
// records those the API acknowledged, in order. A failed call is not
// retried (its outcome is unknown: it may or may not be published).
type writer struct {
	c    *harness.Cluster
	node int
	// gate is held for reading by every write; the test takes it to
	// pause the stream (around the broker's restart).
	gate sync.RWMutex

	mu     sync.Mutex
	acked  []change
	failed int
}

func (w *writer) ackedChanges() []change {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]change(nil), w.acked...)
}

func (w *writer) do(ctx context.Context, method, route string, body any, ch change) {
	w.gate.RLock()
	defer w.gate.RUnlock()
	// At most writeRate writes a second: the windows in which a message
	// may be sent twice span what was written in a few seconds, so a
	// faster stream would make them cover most of it.
	defer time.Sleep(time.Second / writeRate)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := w.c.Client(w.node, nil).Do(cctx, method, route, nil, body, nil)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.failed++
		w.mu.Unlock()
		// No leader for a moment (the failover): do not spin.
		time.Sleep(50 * time.Millisecond)
		w.mu.Lock()
		return
	}
	w.acked = append(w.acked, ch)
}

// run writes entity after entity until ctx ends: a client and a role are
// each created, updated and deleted.
func (w *writer) run(ctx context.Context) {
	for n := 0; ctx.Err() == nil; n++ {
		cid, rid := fmt.Sprintf("events-test-c-%d", n), fmt.Sprintf("events-test-r-%d", n)
		expires := protocol.FormatTime(time.Now().Add(24 * time.Hour))
		client := map[string]any{"description": "d", "expires": expires, "scopes": []string{"notes:read:*"}}
		role := map[string]any{"description": "d", "scopes": []string{"notes:read:" + rid}}
		w.do(ctx, http.MethodPut, "/clients/"+cid, client, change{prefix + "client-created", cid})
		w.do(ctx, http.MethodPut, "/roles/"+rid, role, change{prefix + "role-created", rid})
		client["description"], role["description"] = "d2", "d2"
		w.do(ctx, http.MethodPost, "/clients/"+cid, client, change{prefix + "client-updated", cid})
		w.do(ctx, http.MethodPost, "/roles/"+rid, role, change{prefix + "role-updated", rid})
		w.do(ctx, http.MethodDelete, "/clients/"+cid, nil, change{prefix + "client-deleted", cid})
		w.do(ctx, http.MethodDelete, "/roles/"+rid, nil, change{prefix + "role-deleted", rid})
	}
}

// window is a range of Raft indexes a failover may send twice.
type window struct {
	what   string
	lo, hi uint64
}

func msgIndex(id string) uint64 {
	idx, _, _ := strings.Cut(id, ".")
	v, _ := strconv.ParseUint(idx, 10, 64)
	return v
}

// newestBefore is the newest message index the consumer had received by t.
func newestBefore(ds []rabbitmqtest.Delivery, t time.Time) uint64 {
	var max uint64
	for _, d := range ds {
		if !d.At.After(t) && msgIndex(d.MessageID) > max {
			max = msgIndex(d.MessageID)
		}
	}
	return max
}

// writeRate bounds the writer (writes per second).
const writeRate = 100

// caughtUp waits until the consumer has received every change in want
// (not an index: outbox acks and no-ops take indexes and publish nothing).
func caughtUp(t *testing.T, consumer *rabbitmqtest.Consumer, want []change) {
	t.Helper()
	must(t, consumer.WaitFor(90*time.Second, func(ds []rabbitmqtest.Delivery) error {
		return checkAllArrived(ds, want)
	}))
}

// settled is how long after its delivery a message has surely been
// confirmed and its confirmation recorded in the log (ackInterval 100ms
// plus a Raft write on a loaded machine, with a wide margin).
const settled = 5 * time.Second

func TestChangeEventsAcrossFailoverAndBrokerOutage(t *testing.T) {
	broker := rabbitmqtest.Start(t)
	broker.DumpLogOnFailure(t)
	var xs []string
	for _, x := range events.Exchanges {
		xs = append(xs, prefix+x)
	}
	consumer := rabbitmqtest.Consume(t, broker.URL(), "tcauth-events-test", nil, xs...)

	dir := t.TempDir()
	urlFile, cfgFile := filepath.Join(dir, "amqp-url"), filepath.Join(dir, "events.yaml")
	must(t, os.WriteFile(urlFile, []byte(broker.URL()+"\n"), 0o600))
	must(t, os.WriteFile(cfgFile, []byte("urlFile: "+urlFile+"\nackInterval: 100ms\nconfirmTimeout: 30s\n"), 0o600))
	c := harness.StartCluster(t, harness.ClusterConfig{ExtraArgs: []string{"--events-config", cfgFile}})
	leader, err := c.Leader(30 * time.Second)
	must(t, err)
	w := &writer{c: c, node: (leader + 1) % len(c.Nodes)}
	// Writes before the leader enabled the outbox would not be published.
	must(t, harness.Eventually(30*time.Second, func() error {
		v, err := c.Nodes[w.node].Metric("tcauth_events_outbox_limit")
		if err == nil && v == 0 {
			err = fmt.Errorf("outbox not enabled yet")
		}
		return err
	}))

	ctx, stopWriting := context.WithCancel(context.Background())
	defer stopWriting()
	writing := make(chan struct{})
	go func() { defer close(writing); w.run(ctx) }()
	waitAcked := func(n int) {
		t.Helper()
		must(t, harness.Eventually(60*time.Second, func() error {
			if got := len(w.ackedChanges()); got < n {
				return fmt.Errorf("%d acknowledged writes, want %d", got, n)
			}
			return nil
		}))
	}
	// Long enough a stream that the failover window's lower bound (what
	// the consumer had received `settled` before the kill) is not zero.
	started := time.Now()
	waitAcked(60)
	time.Sleep(time.Until(started.Add(settled + 2*time.Second)))

	// Kill the leader mid-stream.
	killedAt := time.Now()
	c.Nodes[leader].Kill()
	t.Logf("killed leader %s after %d acknowledged writes", c.Nodes[leader].ID, len(w.ackedChanges()))
	newLeader, err := c.Leader(60 * time.Second)
	must(t, err)
	// A linearizable read through the new leader: its state then holds
	// every entry the old leader could have published.
	lctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	must(t, harness.Eventually(30*time.Second, func() error {
		return c.Client(newLeader, nil).Do(lctx, http.MethodGet, "/roles/", nil, nil, nil)
	}))
	cancel()
	hi, err := c.Nodes[newLeader].Metric("tcauth_raft_applied_index")
	must(t, err)
	failover := window{"leader failover", 0, uint64(hi)}
	waitAcked(len(w.ackedChanges()) + 60)
	// The new leader publishes what its predecessor left unconfirmed and
	// catches up; only then is the broker stopped, so that the outage's
	// window starts near the stop instead of at the failover.
	caughtUp(t, consumer, w.ackedChanges())
	time.Sleep(settled + time.Second)

	// Stop the broker mid-stream: writes go on.
	stoppedAt := time.Now()
	broker.Stop()
	hi, err = c.Nodes[newLeader].Metric("tcauth_raft_applied_index")
	must(t, err)
	outage := window{"broker outage", 0, uint64(hi)}
	during := len(w.ackedChanges())
	waitAcked(during + 40)
	downAcked := len(w.ackedChanges()) - during
	t.Logf("%d writes acknowledged while the broker was down", downAcked)
	// The first connection after the restart carries what was written
	// during the outage; a broker still recovering its queues may not
	// confirm its first message in time, which is sent again (one message:
	// the publisher starts each connection with one in flight). So the
	// outage window reaches to what existed when the broker came back:
	// the writer pauses until the consumer has all of that.
	func() {
		w.gate.Lock()
		defer w.gate.Unlock()
		hi, err := c.Nodes[newLeader].Metric("tcauth_raft_applied_index")
		must(t, err)
		outage.hi = uint64(hi)
		must(t, broker.Start())
		caughtUp(t, consumer, w.ackedChanges())
	}()
	waitAcked(len(w.ackedChanges()) + 40)
	stopWriting()
	<-writing

	want := w.ackedChanges()
	var got []rabbitmqtest.Delivery
	err = consumer.WaitFor(90*time.Second, func(ds []rabbitmqtest.Delivery) error {
		got = ds
		return checkAllArrived(ds, want)
	})
	if err != nil {
		t.Fatalf("%v (%d acknowledged, %d failed writes)", err, len(want), w.failed)
	}
	// Messages the consumer had long received before a failover were
	// confirmed and recorded: sending them again would be a bug.
	failover.lo = newestBefore(got, killedAt.Add(-settled))
	outage.lo = newestBefore(got, stoppedAt.Add(-settled))
	checkOrderAndDuplicates(t, got, []window{failover, outage})
	checkMessageFormat(t, got)
	for _, n := range c.Nodes {
		if strings.Contains(n.Log(), broker.Password) {
			t.Errorf("%s's log shows the broker password", n.ID)
		}
	}
	harness.Summary(t, "%d acknowledged changes (%d while the broker was down), %d writes failed (unknown outcome), %d messages received", len(want), downAcked, w.failed, len(got))
}

// checkAllArrived: every acknowledged change is among the first
// occurrences, in the order of acknowledgement.
func checkAllArrived(ds []rabbitmqtest.Delivery, want []change) error {
	seen := map[string]bool{}
	i := 0
	for _, d := range ds {
		if seen[d.MessageID] {
			continue
		}
		seen[d.MessageID] = true
		if i < len(want) && d.Exchange == want[i].exchange && strings.Contains(string(d.Body), `":"`+want[i].id+`",`) {
			i++
		}
	}
	if i < len(want) {
		return fmt.Errorf("acknowledged change %d of %d (%+v) not received in order", i, len(want), want[i])
	}
	return nil
}

// checkOrderAndDuplicates: first occurrences in Raft-index order, and a
// message received twice only if a failover may have sent it twice.
func checkOrderAndDuplicates(t *testing.T, ds []rabbitmqtest.Delivery, windows []window) {
	t.Helper()
	seen := map[string]bool{}
	var last uint64
	lastID := ""
	dups := map[string]int{}
	for _, d := range ds {
		if seen[d.MessageID] {
			idx := msgIndex(d.MessageID)
			what := ""
			for _, w := range windows {
				if idx > w.lo && idx <= w.hi {
					what = w.what
					break
				}
			}
			if what == "" {
				t.Errorf("message %s received twice outside any failover window %+v", d.MessageID, windows)
				what = "outside a failover"
			}
			dups[what]++
			continue
		}
		seen[d.MessageID] = true
		if idx := msgIndex(d.MessageID); idx < last || idx == last && d.MessageID <= lastID {
			t.Errorf("message %s after %s: not in Raft-index order", d.MessageID, lastID)
		}
		last, lastID = msgIndex(d.MessageID), d.MessageID
	}
	total := 0
	for _, n := range dups {
		total += n
	}
	harness.Summary(t, "sent twice (same message-id): %d, by window %v; windows %+v", total, dups, windows)
}

func checkMessageFormat(t *testing.T, ds []rabbitmqtest.Delivery) {
	t.Helper()
	for _, d := range ds {
		if d.Exchange != prefix+"client-created" {
			continue
		}
		body := string(d.Body)
		id, ok := strings.CutPrefix(body, `{"clientId":"events-test-c-`)
		id, ok2 := strings.CutSuffix(id, `","version":1}`)
		if !ok || !ok2 || strings.ContainsAny(id, `"\`) ||
			d.RoutingKey != "_" || d.ContentType != "application/json" || d.ContentEncoding != "utf-8" ||
			d.DeliveryMode != 2 || d.Headers != nil || msgIndex(d.MessageID) == 0 {
			t.Errorf("message %+v (body %s)", d, d.Body)
		}
		return
	}
	t.Error("no client-created message")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
