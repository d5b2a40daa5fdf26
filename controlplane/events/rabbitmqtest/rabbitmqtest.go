// Package rabbitmqtest runs a private RabbitMQ broker for tests: the real
// rabbitmq-server (Debian's package), on free loopback ports, with its own
// node name, data and log directories, Erlang cookie and epmd port, so it
// never touches the system's broker or another test's. Only tests import
// it.
//
// The server is found through TCAUTH_RABBITMQ (the path of
// rabbitmq-server; `make deps-rabbitmq` installs it). Without it the test
// is skipped, except when TCAUTH_REQUIRE_PEERS=1, where that is a failure.
package rabbitmqtest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tcauth/tcauth/controlplane/controlplanetest/peers"
)

// debianServer is the real start script. /usr/sbin/rabbitmq-server is,
// on Debian, a wrapper that switches to the rabbitmq user and its home
// directory, which a private broker must not use.
const debianServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// StartTimeout bounds a broker start (Erlang boots slowly on a loaded
// machine: about 10 s on two busy cores).
var StartTimeout = 2 * time.Minute

// Need returns the rabbitmq-server to run, skipping (or failing, with
// TCAUTH_REQUIRE_PEERS=1) the test when there is none.
func Need(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("TCAUTH_RABBITMQ")
	var err error
	if bin == "" {
		err = errors.New("TCAUTH_RABBITMQ is not set")
	} else if _, err = os.Stat(bin); err == nil {
		if real, e := filepath.EvalSymlinks(bin); e == nil && filepath.Base(real) == "rabbitmq-script-wrapper" {
			bin = debianServer
		}
		_, err = os.Stat(bin)
	}
	if err != nil {
		if os.Getenv("TCAUTH_REQUIRE_PEERS") == "1" {
			t.Fatalf("rabbitmq-server is required (make deps-rabbitmq): %v", err)
		}
		t.Skipf("needs rabbitmq-server (TCAUTH_RABBITMQ; make deps-rabbitmq): %v", err)
	}
	return bin
}

// Broker is one private RabbitMQ node. Stop and Start restart it with the
// same node name, ports and data, so durable queues and persistent
// messages survive (a broker outage).
type Broker struct {
	Bin      string
	Dir      string
	Node     string
	Port     int // AMQP
	User     string
	Password string
	LogPath  string

	distPort, epmdPort int
	cmd                *exec.Cmd
	done               chan struct{}
}

var seq atomic.Int64

// Start runs a broker for the rest of the test (stopped in Cleanup).
func Start(t testing.TB) *Broker {
	t.Helper()
	b, err := New(Need(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.Start(); err != nil {
		t.Fatalf("%v\n%s", err, tail(b.Log(), 4000))
	}
	return b
}

// New prepares a broker in dir (not started).
func New(bin, dir string) (*Broker, error) {
	pw := make([]byte, 12)
	if _, err := rand.Read(pw); err != nil {
		return nil, err
	}
	b := &Broker{Bin: bin, Dir: dir, User: "tcauth", Password: hex.EncodeToString(pw),
		Node: fmt.Sprintf("tcauth-test-%d-%d@localhost", os.Getpid(), seq.Add(1)), LogPath: filepath.Join(dir, "rabbitmq.log")}
	ports, err := peers.FreePortNumbers(3)
	if err != nil {
		return nil, err
	}
	b.Port, b.distPort, b.epmdPort = ports[0], ports[1], ports[2]
	for _, d := range []string{"home", "mnesia", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	conf := fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\ndefault_user = %s\ndefault_pass = %s\n"+
		"loopback_users = none\ndisk_free_limit.absolute = 1MB\n", b.Port, b.User, b.Password)
	files := map[string]string{
		"rabbitmq.conf": conf, "enabled_plugins": "[].\n", "rabbitmq-env.conf": "",
		"home/.erlang.cookie": hex.EncodeToString(pw) + "COOKIE",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o400); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// URL is the broker's AMQP URL (with the password).
func (b *Broker) URL() string {
	return fmt.Sprintf("amqp://%s:%s@127.0.0.1:%d/", b.User, b.Password, b.Port)
}

// Running reports whether the broker process runs.
func (b *Broker) Running() bool {
	if b.done == nil {
		return false
	}
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// Start runs the broker and waits until it accepts an AMQP connection.
func (b *Broker) Start() error {
	if b.Running() {
		return errors.New("rabbitmqtest: already running")
	}
	logf, err := os.OpenFile(b.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(b.Bin)
	cmd.Dir = b.Dir
	cmd.Env = b.env()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	fmt.Fprintf(logf, "=== %s start %s\n", time.Now().Format(time.RFC3339Nano), b.Node)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	b.cmd, b.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(b.done) }()
	deadline := time.Now().Add(StartTimeout)
	for {
		conn, err := amqp.DialConfig(b.URL(), amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
		if err == nil {
			return conn.Close()
		}
		if !b.Running() {
			return fmt.Errorf("rabbitmqtest: rabbitmq-server exited during start-up (log %s)", b.LogPath)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rabbitmqtest: the broker did not accept connections within %s: %v", StartTimeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *Broker) env() []string {
	d := b.Dir
	return []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(d, "home"), "LANG=C.UTF-8",
		"ERL_EPMD_PORT=" + fmt.Sprint(b.epmdPort), "ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_NODENAME=" + b.Node, "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + fmt.Sprint(b.Port), "RABBITMQ_DIST_PORT=" + fmt.Sprint(b.distPort),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(d, "rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(d, "rabbitmq.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(d, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(d, "mnesia"), "RABBITMQ_LOG_BASE=" + filepath.Join(d, "log"),
		"RABBITMQ_PID_FILE=" + filepath.Join(d, "rabbitmq.pid"), "RABBITMQ_LOGS=-",
	}
}

// Stop shuts the broker down (SIGTERM: RabbitMQ stops cleanly, persistent
// messages are on disk), killing it after 30 s.
func (b *Broker) Stop() {
	if !b.Running() {
		return
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.done
	}
}

// Close stops the broker and its private epmd.
func (b *Broker) Close() {
	b.Stop()
	if epmd, err := exec.LookPath("epmd"); err == nil {
		cmd := exec.Command(epmd, "-kill")
		cmd.Env = b.env()
		_ = cmd.Run()
	}
}

// Log returns the broker's output so far.
func (b *Broker) Log() string {
	out, _ := os.ReadFile(b.LogPath)
	return string(out)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// DumpLogOnFailure prints the broker's log tail when t fails.
func (b *Broker) DumpLogOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- rabbitmq %s (%s) ----\n%s", b.Node, b.LogPath, tail(strings.TrimSpace(b.Log()), 6000))
		}
	})
}

// Delivery is one message a Consumer received.
type Delivery struct {
	Exchange, RoutingKey, MessageID string
	ContentType, ContentEncoding    string
	DeliveryMode                    uint8
	Headers                         amqp.Table
	Body                            []byte
	Redelivered                     bool      // the broker may have delivered it before (not acked then)
	At                              time.Time // when the consumer received it
}

// Consumer reads a durable queue bound with "#" to a set of topic
// exchanges, acknowledging each message once recorded, and reconnects
// when the broker goes away (a broker outage).
type Consumer struct {
	mu   sync.Mutex
	got  []Delivery
	stop chan struct{}
	done chan struct{}
}

// Consume declares the exchanges (topic, durable, as Taskcluster does),
// a durable queue with args (nil: none) bound "#" to each, and consumes
// it until the test ends.
func Consume(t testing.TB, url, queue string, args amqp.Table, exchanges ...string) *Consumer {
	t.Helper()
	c := &Consumer{stop: make(chan struct{}), done: make(chan struct{})}
	setup := func() (*amqp.Connection, <-chan amqp.Delivery, error) {
		conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
		if err != nil {
			return nil, nil, err
		}
		ch, err := conn.Channel()
		if err == nil {
			err = declareAndBind(ch, queue, args, exchanges)
		}
		var msgs <-chan amqp.Delivery
		if err == nil {
			msgs, err = ch.Consume(queue, "", false, false, false, false, nil)
		}
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		return conn, msgs, nil
	}
	conn, msgs, err := setup()
	if err != nil {
		t.Fatalf("rabbitmqtest: consumer: %v", err)
	}
	go c.run(conn, msgs, setup)
	t.Cleanup(func() { close(c.stop); <-c.done })
	return c
}

func declareAndBind(ch *amqp.Channel, queue string, args amqp.Table, exchanges []string) error {
	if err := ch.Qos(64, 0, false); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, args); err != nil {
		return err
	}
	for _, x := range exchanges {
		if err := ch.ExchangeDeclare(x, "topic", true, false, false, false, nil); err != nil {
			return err
		}
		if err := ch.QueueBind(queue, "#", x, false, nil); err != nil {
			return err
		}
	}
	return nil
}

func (c *Consumer) run(conn *amqp.Connection, msgs <-chan amqp.Delivery, setup func() (*amqp.Connection, <-chan amqp.Delivery, error)) {
	defer close(c.done)
	for {
		if conn != nil {
			c.read(msgs)
			conn.Close()
		}
		select {
		case <-c.stop:
			return
		case <-time.After(200 * time.Millisecond):
		}
		conn, msgs, _ = setup()
	}
}

// read records deliveries until the channel closes or the consumer stops.
func (c *Consumer) read(msgs <-chan amqp.Delivery) {
	for {
		select {
		case <-c.stop:
			return
		case d, ok := <-msgs:
			if !ok {
				return
			}
			c.mu.Lock()
			c.got = append(c.got, Delivery{Exchange: d.Exchange, RoutingKey: d.RoutingKey, MessageID: d.MessageId,
				ContentType: d.ContentType, ContentEncoding: d.ContentEncoding, DeliveryMode: d.DeliveryMode,
				Headers: d.Headers, Body: d.Body, Redelivered: d.Redelivered, At: time.Now()})
			c.mu.Unlock()
			_ = d.Ack(false)
		}
	}
}

// Deliveries returns what was received so far, in order.
func (c *Consumer) Deliveries() []Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Delivery(nil), c.got...)
}

// WaitFor calls check with the deliveries until it returns nil or the
// timeout passes, and returns check's last error.
func (c *Consumer) WaitFor(timeout time.Duration, check func([]Delivery) error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check(c.Deliveries())
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
