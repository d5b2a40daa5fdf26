package events

import (
	"encoding/json"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tcauth/tcauth/raftstore"
)

func TestBuildMessages(t *testing.T) {
	const prefix = DefaultExchangePrefix
	for _, tc := range []struct {
		ev                 raftstore.OutboxEvent
		exchange, body, id string
	}{
		{raftstore.OutboxEvent{Index: 7, Kind: "client", ID: "my/client", Action: "created"},
			prefix + "client-created", `{"clientId":"my/client","version":1}`, "7"},
		{raftstore.OutboxEvent{Index: 8, Kind: "client", ID: "a@b.c|d+e", Action: "updated"},
			prefix + "client-updated", `{"clientId":"a@b.c|d+e","version":1}`, "8"},
		{raftstore.OutboxEvent{Index: 9, Seq: 2, Kind: "client", ID: "x", Action: "deleted"},
			prefix + "client-deleted", `{"clientId":"x","version":1}`, "9.2"},
		{raftstore.OutboxEvent{Index: 10, Kind: "role", ID: "project-admin:*", Action: "created"},
			prefix + "role-created", `{"roleId":"project-admin:*","version":1}`, "10"},
		// JSON.stringify escapes neither <, > nor &, and " and \ as JSON must.
		{raftstore.OutboxEvent{Index: 11, Kind: "role", ID: `repo:<a>&"b"\`, Action: "updated"},
			prefix + "role-updated", `{"roleId":"repo:<a>&\"b\"\\","version":1}`, "11"},
		{raftstore.OutboxEvent{Index: 12, Kind: "role", ID: "r", Action: "deleted"},
			prefix + "role-deleted", `{"roleId":"r","version":1}`, "12"},
	} {
		m, err := Build(prefix, tc.ev)
		if err != nil {
			t.Fatalf("%+v: %v", tc.ev, err)
		}
		if m.Exchange != tc.exchange || string(m.Body) != tc.body || m.MessageId != tc.id {
			t.Errorf("%+v: got %s %s id %s, want %s %s id %s", tc.ev, m.Exchange, m.Body, m.MessageId, tc.exchange, tc.body, tc.id)
		}
		if m.DeliveryMode != amqp.Persistent || m.ContentType != "application/json" || m.ContentEncoding != "utf-8" || m.Headers != nil {
			t.Errorf("%+v: properties %+v", tc.ev, m.Publishing)
		}
	}
}

func TestBuildRefusesUnknownEvents(t *testing.T) {
	for _, ev := range []raftstore.OutboxEvent{
		{Index: 1, Kind: "secret", ID: "x", Action: "created"},
		{Index: 1, Kind: "client", ID: "x", Action: "expired"},
		{Index: 1, Kind: "", ID: "x", Action: ""},
	} {
		if m, err := Build(DefaultExchangePrefix, ev); err == nil || !strings.HasPrefix(err.Error(), "events:") {
			t.Errorf("%+v: got %+v, %v; want an error", ev, m, err)
		}
	}
}

// Every exchange a message can go to is one of the six declared.
func TestExchangesCoverEveryMessage(t *testing.T) {
	declared := map[string]bool{}
	for _, x := range Exchanges {
		declared["p/"+x] = true
	}
	for _, kind := range []string{"client", "role"} {
		for _, action := range []string{"created", "updated", "deleted"} {
			m, err := Build("p/", raftstore.OutboxEvent{Index: 1, Kind: kind, ID: "i", Action: action})
			if err != nil || !declared[m.Exchange] {
				t.Errorf("%s %s: exchange %q (declared: %v), %v", kind, action, m.Exchange, declared[m.Exchange], err)
			}
		}
	}
	if len(declared) != 6 {
		t.Errorf("%d exchanges, want 6", len(declared))
	}
}

// FuzzBuild: whatever the id, the body is JSON that decodes to exactly
// that id and version 1, with the key first (the bytes Taskcluster sends).
func FuzzBuild(f *testing.F) {
	for _, s := range []string{"my/client", "", `a"b\c`, "<&>", "\u2028", "é", "\x00"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, id string, client bool) {
		ev := raftstore.OutboxEvent{Index: 3, Kind: "role", ID: id, Action: "deleted"}
		key := "roleId"
		if client {
			ev.Kind, key = "client", "clientId"
		}
		m, err := Build(DefaultExchangePrefix, ev)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal(m.Body, &body); err != nil {
			t.Fatalf("%q: %v", m.Body, err)
		}
		want := string([]rune(id)) // invalid UTF-8: U+FFFD per byte, as encoding/json does
		if len(body) != 2 || body[key] != want || body["version"] != 1.0 || !strings.HasPrefix(string(m.Body), `{"`+key+`":`) {
			t.Fatalf("%q: body %q", id, m.Body)
		}
	})
}
