package events

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tcauth/tcauth/controlplane/events/rabbitmqtest"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/raftstore"
)

// waitTimeout is generous: two loaded cores, a broker restart included.
const waitTimeout = 60 * time.Second

func exchangesOf(prefix string) []string {
	var xs []string
	for _, x := range Exchanges {
		xs = append(xs, prefix+x)
	}
	return xs
}

// checkStream checks that the first occurrences of the deliveries are
// exactly want, in order, and returns how many were duplicates.
func checkStream(got []rabbitmqtest.Delivery, want []raftstore.OutboxEvent) (dups int, err error) {
	seen := map[string]bool{}
	var first []string
	for _, d := range got {
		if seen[d.MessageID] {
			dups++
			continue
		}
		seen[d.MessageID] = true
		first = append(first, d.MessageID)
	}
	if len(first) < len(want) {
		return dups, fmt.Errorf("%d of %d messages arrived", len(first), len(want))
	}
	for i, ev := range want {
		if i >= len(first) || first[i] != ev.MessageID() {
			return dups, fmt.Errorf("message %d is %q, want %q (first occurrences %v)", i, first[i], ev.MessageID(), first)
		}
	}
	if len(first) > len(want) {
		return dups, fmt.Errorf("unexpected messages %v", first[len(want):])
	}
	return dups, nil
}

func addMixed(out *fakeOutbox, n int, tag string) []raftstore.OutboxEvent {
	kinds := []string{"client", "role"}
	actions := []string{"created", "updated", "deleted"}
	var evs []raftstore.OutboxEvent
	for i := range n {
		evs = append(evs, out.add(kinds[i%2], fmt.Sprintf("%s/%d", tag, i), actions[i%3]))
	}
	return evs
}

// One broker for every case (an Erlang start costs ~10 s); each case has
// its own exchange prefix and queue, and they run one after the other
// because "outage" restarts the broker.
func TestPublisherRabbitMQ(t *testing.T) {
	b := rabbitmqtest.Start(t)
	b.DumpLogOnFailure(t)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, b *rabbitmqtest.Broker, prefix string)
	}{
		{"in order with exact messages", testInOrder},
		{"broker outage", testOutage},
		{"nack republishes from the first unconfirmed", testNack},
		{"leadership loss stops publishing", testLeadershipLoss},
		{"a broker that stops answering", testConfirmTimeout},
		{"a new leader continues where the old one stopped", testHandover},
	} {
		prefix := "exchange/test-" + strings.ReplaceAll(tc.name, " ", "-") + "/v1/"
		t.Run(tc.name, func(t *testing.T) { tc.run(t, b, prefix) })
	}
}

func testInOrder(t *testing.T, b *rabbitmqtest.Broker, prefix string) {
	out := newFakeOutbox()
	c := rabbitmqtest.Consume(t, b.URL(), "q-order", nil, exchangesOf(prefix)...)
	const ackInterval = 50 * time.Millisecond
	start := time.Now()
	p, logs, _ := runPublisher(t, Config{URL: b.URL(), ExchangePrefix: prefix, Window: 16, AckInterval: protocol.Duration(ackInterval)}, out)
	want := addMixed(out, 150, "a")
	// An event no message exists for (a newer version's kind) is skipped
	// in order; the ones after it still go out.
	out.add("future-kind", "x", "created")
	want = append(want, addMixed(out, 10, "b")...)
	if err := c.WaitFor(waitTimeout, func(got []rabbitmqtest.Delivery) error { _, err := checkStream(got, want); return err }); err != nil {
		t.Fatal(err)
	}
	got := c.Deliveries()
	if len(got) != len(want) {
		t.Errorf("%d deliveries for %d events", len(got), len(want))
	}
	for i, d := range got {
		m, _ := Build(prefix, want[i])
		if d.Exchange != m.Exchange || d.RoutingKey != "_" || string(d.Body) != string(m.Body) ||
			d.ContentType != "application/json" || d.ContentEncoding != "utf-8" || d.DeliveryMode != amqp.Persistent || d.Headers != nil {
			t.Fatalf("delivery %d: %+v, want exchange %s body %s", i, d, m.Exchange, m.Body)
		}
	}
	eventually(t, waitTimeout, "every confirmation recorded", func() bool {
		return out.OutboxStatus().Acked == want[len(want)-1].Pos() && out.OutboxStatus().Pending == 0
	})
	if st := p.Stats(); st.Published != uint64(len(want)) || st.Republished != 0 || !st.Connected {
		t.Errorf("stats %+v", st)
	}
	// Acks are batched: at most one log write per AckInterval.
	elapsed := time.Since(start)
	if n := len(out.ackList()); n == 0 || n > int(elapsed/ackInterval)+2 {
		t.Errorf("%d AckOutbox calls for %d messages in %s (ackInterval %s)", n, len(want), elapsed, ackInterval)
	}
	if logs.Count("cannot be published") != 1 {
		t.Errorf("the skipped event was not logged once:\n%s", logs)
	}
}

func testOutage(t *testing.T, b *rabbitmqtest.Broker, prefix string) {
	out := newFakeOutbox()
	c := rabbitmqtest.Consume(t, b.URL(), "q-outage", nil, exchangesOf(prefix)...)
	p, logs, _ := runPublisher(t, Config{URL: b.URL(), ExchangePrefix: prefix, MinBackoff: protocol.Duration(50 * time.Millisecond), MaxBackoff: protocol.Duration(time.Second)}, out)
	want := addMixed(out, 30, "before")
	if err := c.WaitFor(waitTimeout, func(got []rabbitmqtest.Delivery) error { _, err := checkStream(got, want); return err }); err != nil {
		t.Fatal(err)
	}
	b.Stop()
	// Writes go on while the broker is down (the fake's add stands for the
	// apply, which never waits for the publisher).
	want = append(want, addMixed(out, 30, "during")...)
	eventually(t, waitTimeout, "the publisher to notice the outage", func() bool { return !p.Stats().Connected })
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	want = append(want, addMixed(out, 30, "after")...)
	var dups int
	if err := c.WaitFor(waitTimeout, func(got []rabbitmqtest.Delivery) (err error) { dups, err = checkStream(got, want); return err }); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages, %d delivered twice (the consumer's unacknowledged ones at the shutdown)", len(want), dups)
	if logs.Count("the broker is unreachable") != 1 || logs.Count("reachable again") != 1 {
		t.Errorf("outage not logged once at start and end:\n%s", logs)
	}
	if strings.Contains(logs.String(), b.Password) {
		t.Error("the log shows the broker password")
	}
}

func testNack(t *testing.T, b *rabbitmqtest.Broker, prefix string) {
	out := newFakeOutbox()
	// A queue that takes 5 messages and makes the broker nack the rest
	// (reject-publish) until it is read. Window 1: see DESIGN.md on order
	// under nacks.
	args := amqp.Table{"x-max-length": int32(5), "x-overflow": "reject-publish"}
	conn, err := amqp.Dial(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	if _, err := ch.QueueDeclare("q-nack", true, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	for _, x := range exchangesOf(prefix) {
		if err := ch.ExchangeDeclare(x, "topic", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind("q-nack", "#", x, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	p, logs, _ := runPublisher(t, Config{URL: b.URL(), ExchangePrefix: prefix, Window: 1,
		MinBackoff: protocol.Duration(20 * time.Millisecond), MaxBackoff: protocol.Duration(100 * time.Millisecond)}, out)
	want := addMixed(out, 12, "n")
	eventually(t, waitTimeout, "a nack and a republish", func() bool { return p.Stats().Republished > 0 })
	if p.Stats().Confirmed.Index > want[4].Index {
		t.Errorf("confirmed %+v although the queue holds 5", p.Stats().Confirmed)
	}
	c := rabbitmqtest.Consume(t, b.URL(), "q-nack", args, exchangesOf(prefix)...)
	var dups int
	if err := c.WaitFor(waitTimeout, func(got []rabbitmqtest.Delivery) (err error) { dups, err = checkStream(got, want); return err }); err != nil {
		t.Fatal(err)
	}
	if dups != 0 {
		t.Errorf("%d duplicates: a nacked message is not in the queue", dups)
	}
	if !strings.Contains(logs.String(), "nack") {
		t.Errorf("the nack is not in the log:\n%s", logs)
	}
}

func testLeadershipLoss(t *testing.T, b *rabbitmqtest.Broker, prefix string) {
	out := newFakeOutbox()
	c := rabbitmqtest.Consume(t, b.URL(), "q-leader", nil, exchangesOf(prefix)...)
	p, _, _ := runPublisher(t, Config{URL: b.URL(), ExchangePrefix: prefix}, out)
	want := addMixed(out, 5, "l")
	if err := c.WaitFor(waitTimeout, func(got []rabbitmqtest.Delivery) error { _, err := checkStream(got, want); return err }); err != nil {
		t.Fatal(err)
	}
	out.setLeader(false)
	eventually(t, waitTimeout, "the connection closed", func() bool { return !p.Stats().Connected })
	late := out.add("client", "late", "created")
	time.Sleep(500 * time.Millisecond) // absence: a follower publishes nothing
	if n := len(c.Deliveries()); n != len(want) {
		t.Fatalf("%d deliveries after losing leadership, want %d", n, len(want))
	}
	out.setLeader(true)
	want = append(want, late)
	if err := c.WaitFor(waitTimeout, func(got []rabbitmqtest.Delivery) error { _, err := checkStream(got, want); return err }); err != nil {
		t.Fatal(err)
	}
}

// Two publishers over one outbox stand for two leaders in turn: the second
// starts after the recorded acknowledgement. When the first could not
// record its confirmations, the second sends them again with the same ids
// — and only those.
func testHandover(t *testing.T, b *rabbitmqtest.Broker, prefix string) {
	out := newFakeOutbox()
	c := rabbitmqtest.Consume(t, b.URL(), "q-handover", nil, exchangesOf(prefix)...)
	cfg := Config{URL: b.URL(), ExchangePrefix: prefix}
	p1, _, stop1 := runPublisher(t, cfg, out)
	want := addMixed(out, 10, "first")
	eventually(t, waitTimeout, "the first leader's confirmations", func() bool { return p1.Stats().Published == 10 })
	stop1() // graceful: its last ack is recorded
	if st := out.OutboxStatus(); st.Acked != want[9].Pos() {
		t.Fatalf("acked %+v after a graceful stop, want %+v", st.Acked, want[9].Pos())
	}
	out.mu.Lock()
	out.ackErr = fmt.Errorf("the log refuses acks in this test")
	out.mu.Unlock()
	p2, _, stop2 := runPublisher(t, cfg, out)
	unacked := addMixed(out, 5, "second")
	want = append(want, unacked...)
	eventually(t, waitTimeout, "the second leader's confirmations", func() bool { return p2.Stats().Published == 5 })
	stop2() // its acks failed: the next leader must resend those 5
	out.mu.Lock()
	out.ackErr = nil
	out.mu.Unlock()
	p3, _, _ := runPublisher(t, cfg, out)
	want = append(want, addMixed(out, 3, "third")...)
	var dups int
	if err := c.WaitFor(waitTimeout, func(got []rabbitmqtest.Delivery) (err error) {
		dups, err = checkStream(got, want)
		if err == nil && dups < len(unacked) {
			err = fmt.Errorf("%d duplicates so far", dups)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if dups != len(unacked) || p3.Stats().Published != 8 {
		t.Errorf("%d duplicates (want %d), third published %d (want 8)", dups, len(unacked), p3.Stats().Published)
	}
	for _, d := range c.Deliveries()[15:20] {
		if !strings.HasPrefix(string(d.Body), `{"`) || d.MessageID == "" {
			t.Errorf("resent message %+v", d)
		}
	}
}

// freezingProxy relays TCP to the broker; freeze stops relaying the
// broker's answers on the connections open now (a broker or network that
// hangs: publishes go through, confirmations and heartbeats never come
// back). Connections made later work.
type freezingProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen []chan struct{} // per connection: closed = frozen
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

func (p *freezingProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		freeze := make(chan struct{})
		p.mu.Lock()
		p.frozen = append(p.frozen, freeze)
		p.mu.Unlock()
		go func() { io.Copy(b, c); b.Close() }()
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := b.Read(buf)
				select {
				case <-freeze:
					<-make(chan struct{}) // hang: never answer again
				default:
				}
				if n > 0 {
					c.Write(buf[:n])
				}
				if err != nil {
					c.Close()
					return
				}
			}
		}()
	}
}

func (p *freezingProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.frozen {
		close(f)
	}
	p.frozen = nil
}

func testConfirmTimeout(t *testing.T, b *rabbitmqtest.Broker, prefix string) {
	out := newFakeOutbox()
	c := rabbitmqtest.Consume(t, b.URL(), "q-timeout", nil, exchangesOf(prefix)...)
	proxy := newFreezingProxy(t, fmt.Sprintf("127.0.0.1:%d", b.Port))
	url := fmt.Sprintf("amqp://%s:%s@%s/", b.User, b.Password, proxy.ln.Addr())
	// Long heartbeats: only the confirmation timeout (and a bounded close)
	// can notice the hang within the test's patience.
	cfg := Config{URL: url, ExchangePrefix: prefix, ConfirmTimeout: protocol.Duration(time.Second), MinBackoff: protocol.Duration(20 * time.Millisecond),
		Dial: func(u string) (*amqp.Connection, error) {
			return amqp.DialConfig(u, amqp.Config{Heartbeat: 5 * time.Minute, Dial: amqp.DefaultDial(5 * time.Second)})
		}}
	p, logs, _ := runPublisher(t, cfg, out)
	want := addMixed(out, 5, "t")
	eventually(t, waitTimeout, "the first confirmations", func() bool { return p.Stats().Published == 5 })
	proxy.freeze()
	want = append(want, addMixed(out, 5, "frozen")...)
	var dups int
	if err := c.WaitFor(waitTimeout, func(got []rabbitmqtest.Delivery) (err error) { dups, err = checkStream(got, want); return err }); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitTimeout, "every message confirmed", func() bool { return p.Stats().Confirmed == want[9].Pos() })
	if !strings.Contains(logs.String(), ErrConfirmTimeout.Error()) {
		t.Errorf("no confirmation timeout in the log:\n%s", logs)
	}
	t.Logf("%d duplicates when every message had arrived (resent ones may follow: the broker had them, their confirmations were lost)", dups)
}
