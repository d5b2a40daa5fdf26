package controlplane

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane/events"
	"github.com/tcauth/tcauth/protocol"
)

// Events need the outbox of the Raft store: another Store is refused at
// New, and with the Raft store the publisher's metrics are served.
func TestEventsConfig(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ec := &events.Config{URL: "amqp://u:pw@127.0.0.1:1/", MinBackoff: protocol.Duration(time.Millisecond), MaxBackoff: protocol.Duration(10 * time.Millisecond)}
	if _, err := New(Config{Events: ec, Logger: quiet}, newMemStore()); err == nil || !strings.Contains(err.Error(), "outbox") {
		t.Fatalf("a store without an outbox: %v", err)
	}
	if _, err := New(Config{Events: &events.Config{}, Logger: quiet}, newRaftTestStore(t)); err == nil {
		t.Fatal("an events configuration without a URL was accepted")
	}
	s, err := New(Config{Events: ec, Logger: quiet}, newRaftTestStore(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// The leader enables the outbox (no broker needed for that).
	want := []string{"tcauth_events_outbox_limit 100000", "tcauth_events_outbox_pending 0", "tcauth_events_outbox_dropped_total 0",
		"tcauth_events_published_total 0", "tcauth_events_republished_total 0", "tcauth_events_broker_connected 0"}
	var body string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		body = rec.Body.String()
		missing := false
		for _, w := range want {
			missing = missing || !strings.Contains(body, "\n"+w+"\n")
		}
		if !missing {
			return
		}
	}
	t.Fatalf("metrics %v not all in\n%s", want, body)
}
