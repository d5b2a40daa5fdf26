package events

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/prototest"
	"github.com/tcauth/tcauth/raftstore"
)

// runPublisher runs a publisher over out until the returned stop is called
// (or the test ends).
func runPublisher(t *testing.T, cfg Config, out Outbox) (*Publisher, *prototest.SyncBuffer, func()) {
	t.Helper()
	logs := &prototest.SyncBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := New(cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return p, logs, stop
}

func eventually(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// closedAddr is a loopback port nobody listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// A broker that cannot be reached: the outbox is enabled, the outage is
// logged once however many attempts fail, and the password never shows.
func TestPublisherBrokerDown(t *testing.T) {
	out := newFakeOutbox()
	url := "amqp://tcauth:pw-very-secret@" + closedAddr(t) + "/"
	cfg := Config{URL: url, OutboxLimit: 50, MinBackoff: protocol.Duration(time.Millisecond), MaxBackoff: protocol.Duration(5 * time.Millisecond)}
	var dials int
	var mu sync.Mutex
	cfg.Dial = func(u string) (*amqp.Connection, error) {
		mu.Lock()
		dials++
		mu.Unlock()
		return dial(u)
	}
	_, logs, stop := runPublisher(t, cfg, out)
	eventually(t, 10*time.Second, "several failed dials", func() bool { mu.Lock(); defer mu.Unlock(); return dials >= 5 })
	out.add("client", "c", "created")
	stop()
	if got := out.enables; len(got) != 1 || got[0] != 50 {
		t.Errorf("EnableOutbox calls %v, want [50]", got)
	}
	if n := logs.Count("the broker is unreachable"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), "pw-very-secret") {
		t.Errorf("the log shows the password:\n%s", logs)
	}
	if len(out.ackList()) != 0 {
		t.Errorf("acks %v without a broker", out.ackList())
	}
}

// EnableOutbox is proposed only when the status differs from the
// configuration, and nothing happens on a follower.
func TestPublisherEnablesOnlyWhenNeeded(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  raftstore.OutboxStatus
		leader  bool
		enables int
	}{
		{"disabled", raftstore.OutboxStatus{}, true, 1},
		{"other limit", raftstore.OutboxStatus{Enabled: true, Limit: 10}, true, 1},
		{"same", raftstore.OutboxStatus{Enabled: true, Limit: 20}, true, 0},
		{"follower", raftstore.OutboxStatus{}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := newFakeOutbox()
			out.status, out.leader = tc.status, tc.leader
			connected := make(chan struct{}, 1)
			cfg := Config{URL: "amqp://h/", OutboxLimit: 20, MinBackoff: protocol.Duration(time.Millisecond), MaxBackoff: protocol.Duration(time.Millisecond)}
			cfg.Dial = func(string) (*amqp.Connection, error) {
				select {
				case connected <- struct{}{}:
				default:
				}
				return nil, errors.New("no broker in this test")
			}
			_, _, stop := runPublisher(t, cfg, out)
			if tc.leader {
				<-connected // prepare is done before the first dial
			} else {
				time.Sleep(200 * time.Millisecond) // a follower must stay idle
			}
			stop()
			if len(out.enables) != tc.enables {
				t.Errorf("EnableOutbox called %d times, want %d", len(out.enables), tc.enables)
			}
			if !tc.leader && len(connected) != 0 {
				t.Error("a follower dialled the broker")
			}
		})
	}
}

// The outbox filling up is logged once (with counts), and once again when
// it has room.
func TestWatchFullLogsOnce(t *testing.T) {
	logs := &prototest.SyncBuffer{}
	p, err := New(Config{URL: "amqp://h/", Logger: slog.New(slog.NewJSONHandler(logs, nil))}, newFakeOutbox())
	if err != nil {
		t.Fatal(err)
	}
	st := raftstore.OutboxStatus{Enabled: true, Limit: 3}
	for _, step := range []struct {
		pending         int
		dropped         uint64
		full, room      int
		wantDroppedText string
	}{
		{2, 0, 0, 0, ""},
		{3, 0, 1, 0, `"droppedTotal":0`},
		{3, 4, 1, 0, ""},
		{3, 9, 1, 0, ""},
		{1, 9, 1, 1, `"droppedTotal":9`},
		{3, 10, 2, 1, `"droppedTotal":10`},
	} {
		st.Pending, st.Dropped = step.pending, step.dropped
		p.watchFull(st)
		if logs.Count("outbox is full") != step.full || logs.Count("has room again") != step.room {
			t.Fatalf("after %+v: logs\n%s", step, logs)
		}
		if step.wantDroppedText != "" && !strings.Contains(logs.String(), step.wantDroppedText) {
			t.Fatalf("after %+v: no %s in\n%s", step, step.wantDroppedText, logs)
		}
	}
}

func TestPosString(t *testing.T) {
	for p, want := range map[raftstore.OutboxPos]string{{}: "0", {Index: 5}: "5", {Index: 5, Seq: 2}: "5.2"} {
		if got := posString(p); got != want {
			t.Errorf("posString(%+v) = %q", p, got)
		}
	}
}
