package events

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/raftstore"
)

func TestConfigDefaults(t *testing.T) {
	p, err := New(Config{URL: "amqp://u:p@127.0.0.1:5672/v"}, newFakeOutbox())
	if err != nil {
		t.Fatal(err)
	}
	c := p.Config()
	if c.ExchangePrefix != DefaultExchangePrefix || c.OutboxLimit != raftstore.DefaultOutboxLimit ||
		time.Duration(c.AckInterval) != DefaultAckInterval || time.Duration(c.ConfirmTimeout) != DefaultConfirmTimeout || c.Window != DefaultWindow ||
		time.Duration(c.MinBackoff) != DefaultMinBackoff || time.Duration(c.MaxBackoff) != DefaultMaxBackoff || c.Logger == nil || c.Dial == nil {
		t.Errorf("defaults not filled: %+v", c)
	}
}

func TestConfigRefused(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	good := filepath.Join(dir, "url")
	os.WriteFile(empty, []byte("\n"), 0o600)
	os.WriteFile(good, []byte("amqp://u:s3cret@h:1/\n"), 0o600)
	for _, tc := range []struct {
		name string
		cfg  Config
		want error
	}{
		{"no url", Config{}, ErrNoURL},
		{"both", Config{URL: "amqp://h/", URLFile: good}, ErrBothURLs},
		{"bad scheme", Config{URL: "http://u:s3cret@h/"}, ErrInvalidURL},
		{"empty file", Config{URLFile: empty}, ErrInvalidURL},
		{"missing file", Config{URLFile: filepath.Join(dir, "nope")}, os.ErrNotExist},
		{"negative ack", Config{URL: "amqp://h/", AckInterval: protocol.Duration(-time.Second)}, ErrBadConfig},
		{"negative timeout", Config{URL: "amqp://h/", ConfirmTimeout: -1}, ErrBadConfig},
		{"backoff order", Config{URL: "amqp://h/", MinBackoff: protocol.Duration(time.Minute), MaxBackoff: protocol.Duration(time.Second)}, ErrBadConfig},
		{"limit", Config{URL: "amqp://h/", OutboxLimit: raftstore.MaxOutboxLimit + 1}, ErrBadConfig},
		{"negative limit", Config{URL: "amqp://h/", OutboxLimit: -1}, ErrBadConfig},
		{"window", Config{URL: "amqp://h/", Window: 70000}, ErrBadConfig},
	} {
		_, err := New(tc.cfg, newFakeOutbox())
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows the password: %v", tc.name, err)
		}
	}
	if p, err := New(Config{URLFile: good}, newFakeOutbox()); err != nil || p.url != "amqp://u:s3cret@h:1/" {
		t.Errorf("urlFile: %v", err)
	}
	if _, err := New(Config{URL: "amqp://h/"}, nil); !errors.Is(err, ErrBadConfig) {
		t.Errorf("nil outbox: %v", err)
	}
}

func TestRedaction(t *testing.T) {
	raw := "amqp://user:pa%2Fss@broker.example:5671/prod"
	if got := redactedURL(raw); got != "amqp://broker.example:5671/prod" {
		t.Errorf("redactedURL = %q", got)
	}
	msg := redact("dial "+raw+" failed for pa/ss and pa%2Fss", raw)
	if strings.Contains(msg, "pa/ss") || strings.Contains(msg, "pa%2Fss") || strings.Contains(msg, "user:") {
		t.Errorf("redact left a secret: %q", msg)
	}
	if got := redactedURL("amqps://h/"); got != "amqps://h:5671/%2F" { // vhost "/", as an AMQP URI spells it
		t.Errorf("redactedURL default port = %q", got)
	}
}
