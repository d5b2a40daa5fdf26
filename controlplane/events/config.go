package events

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/raftstore"
)

// Config configures a Publisher. The YAML keys are those of the control
// plane's --events-config file; zero values mean the defaults of
// DefaultConfig. Durations are protocol.Duration: a file may say "30s" or
// "30 seconds".
type Config struct {
	// URL is the broker's AMQP URL (amqp:// or amqps://, with user,
	// password and vhost). It holds a password: it is never logged (only
	// host:port/vhost are). Exactly one of URL and URLFile.
	URL string `yaml:"url"`
	// URLFile names a file holding the URL (preferred: the password then
	// stays out of the configuration file).
	URLFile string `yaml:"urlFile"`
	// ExchangePrefix is prepended to client-created … role-deleted.
	// Default "exchange/taskcluster-auth/v1/" (Taskcluster's).
	ExchangePrefix string `yaml:"exchangePrefix"`
	// OutboxLimit bounds the replicated outbox: when it is full, the oldest
	// unpublished event is dropped (metric and log). Default
	// raftstore.DefaultOutboxLimit (100000).
	OutboxLimit int `yaml:"outboxLimit"`
	// AckInterval is how often the progress the broker confirmed is
	// written to the Raft log (one small entry). Shorter means fewer
	// messages sent twice after a leader failover, longer fewer writes.
	// Default 200ms.
	AckInterval protocol.Duration `yaml:"ackInterval"`
	// ConfirmTimeout is how long a publish may wait for the broker's
	// confirmation before the connection is considered broken and
	// re-established. Default 30s (a broker recovering its queues after a
	// restart can take several seconds to confirm on a busy host).
	ConfirmTimeout protocol.Duration `yaml:"confirmTimeout"`
	// Window is the number of messages in flight (published, not yet
	// confirmed). Default 256.
	Window int `yaml:"window"`
	// MinBackoff and MaxBackoff bound the wait between connection attempts
	// (doubling from MinBackoff). Defaults 100ms and 10s.
	MinBackoff protocol.Duration `yaml:"minBackoff"`
	MaxBackoff protocol.Duration `yaml:"maxBackoff"`

	// Logger. Default slog's default logger.
	Logger *slog.Logger `yaml:"-"`
	// Dial connects to the broker. Default amqp.DialConfig with a 10 s
	// dial timeout and 10 s heartbeats.
	Dial func(url string) (*amqp.Connection, error) `yaml:"-"`
}

// Defaults of Config.
const (
	DefaultExchangePrefix = "exchange/taskcluster-auth/v1/"
	DefaultAckInterval    = 200 * time.Millisecond
	DefaultConfirmTimeout = 30 * time.Second
	DefaultWindow         = 256
	DefaultMinBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff     = 10 * time.Second
)

// Errors of New (wrapped with detail; never with the URL's password).
var (
	ErrNoURL      = errors.New("events: url or urlFile is required")
	ErrBothURLs   = errors.New("events: give either url or urlFile, not both")
	ErrInvalidURL = errors.New("events: invalid broker URL")
	ErrBadConfig  = errors.New("events: invalid configuration")
)

// DefaultConfig returns a Config with every default filled in (and no URL).
func DefaultConfig() Config {
	return Config{
		ExchangePrefix: DefaultExchangePrefix,
		OutboxLimit:    raftstore.DefaultOutboxLimit,
		AckInterval:    protocol.Duration(DefaultAckInterval),
		ConfirmTimeout: protocol.Duration(DefaultConfirmTimeout),
		Window:         DefaultWindow,
		MinBackoff:     protocol.Duration(DefaultMinBackoff),
		MaxBackoff:     protocol.Duration(DefaultMaxBackoff),
	}
}

// Validate checks c as New would (reading URLFile), without a store: for
// a configuration file checked before anything starts.
func (c Config) Validate() error {
	_, err := c.resolve()
	return err
}

// maxOutboxLimit keeps a typo from making the replicated state (and every
// snapshot) huge.
const maxOutboxLimit = raftstore.MaxOutboxLimit

// resolve fills defaults, reads URLFile and checks everything, returning
// the URL to dial.
func (c *Config) resolve() (string, error) {
	d := DefaultConfig()
	if c.ExchangePrefix == "" {
		c.ExchangePrefix = d.ExchangePrefix
	}
	for _, p := range []struct{ v, d *protocol.Duration }{
		{&c.AckInterval, &d.AckInterval}, {&c.ConfirmTimeout, &d.ConfirmTimeout},
		{&c.MinBackoff, &d.MinBackoff}, {&c.MaxBackoff, &d.MaxBackoff},
	} {
		if *p.v < 0 {
			return "", fmt.Errorf("%w: durations must not be negative", ErrBadConfig)
		}
		if *p.v == 0 {
			*p.v = *p.d
		}
	}
	if c.MaxBackoff < c.MinBackoff {
		return "", fmt.Errorf("%w: maxBackoff %s is below minBackoff %s", ErrBadConfig, c.MaxBackoff, c.MinBackoff)
	}
	if c.OutboxLimit < 0 || c.OutboxLimit > maxOutboxLimit {
		return "", fmt.Errorf("%w: outboxLimit must be between 1 and %d", ErrBadConfig, maxOutboxLimit)
	}
	if c.OutboxLimit == 0 {
		c.OutboxLimit = d.OutboxLimit
	}
	if c.Window < 0 || c.Window > 65535 {
		return "", fmt.Errorf("%w: window must be between 1 and 65535", ErrBadConfig)
	}
	if c.Window == 0 {
		c.Window = d.Window
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Dial == nil {
		c.Dial = dial
	}
	raw, err := c.url()
	if err != nil {
		return "", err
	}
	if _, err := amqp.ParseURI(raw); err != nil {
		// ParseURI's errors do not quote the URL; ours must not either.
		return "", fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	return raw, nil
}

func (c *Config) url() (string, error) {
	switch {
	case c.URL != "" && c.URLFile != "":
		return "", ErrBothURLs
	case c.URL != "":
		return strings.TrimSpace(c.URL), nil
	case c.URLFile != "":
		b, err := os.ReadFile(c.URLFile)
		if err != nil {
			return "", fmt.Errorf("events: urlFile: %w", err)
		}
		u := strings.TrimSpace(string(b))
		if u == "" {
			return "", fmt.Errorf("%w: urlFile %s is empty", ErrInvalidURL, c.URLFile)
		}
		return u, nil
	}
	return "", ErrNoURL
}

func dial(u string) (*amqp.Connection, error) {
	return amqp.DialConfig(u, amqp.Config{Heartbeat: 10 * time.Second, Locale: "en_US",
		Dial: amqp.DefaultDial(10 * time.Second)})
}

// redactedURL is what the log may say about the broker: scheme, host,
// port and vhost, never the user info.
func redactedURL(raw string) string {
	u, err := amqp.ParseURI(raw)
	if err != nil {
		return "(invalid URL)"
	}
	scheme := "amqp"
	if u.Scheme != "" {
		scheme = u.Scheme
	}
	return fmt.Sprintf("%s://%s:%d/%s", scheme, u.Host, u.Port, url.PathEscape(u.Vhost))
}

// redact removes the URL's password (and the whole URL) from an error
// text before it is logged: a library error could quote either.
func redact(msg, raw string) string {
	msg = strings.ReplaceAll(msg, raw, redactedURL(raw))
	if u, err := amqp.ParseURI(raw); err == nil && u.Password != "" {
		msg = strings.ReplaceAll(msg, u.Password, "***")
		if esc := url.QueryEscape(u.Password); esc != u.Password {
			msg = strings.ReplaceAll(msg, esc, "***")
		}
	}
	return msg
}
