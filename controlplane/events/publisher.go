// Package events publishes the control plane's client and role changes to
// Taskcluster's auth exchanges on an AMQP 0-9-1 broker (RabbitMQ), from
// the outbox kept in the Raft-replicated state (raftstore). Only the
// leader publishes; see DESIGN.md for the delivery guarantees.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcauth/tcauth/raftstore"
)

// Outbox is what the publisher needs from the replicated store.
// *raftstore.Store satisfies it.
type Outbox interface {
	// OutboxEvents returns up to max events after pos, oldest first, and
	// the outbox status, from this node's applied state.
	OutboxEvents(after raftstore.OutboxPos, max int) ([]raftstore.OutboxEvent, raftstore.OutboxStatus)
	OutboxStatus() raftstore.OutboxStatus
	// AckOutbox records (through the log) that the broker confirmed every
	// event through pos. Leader only.
	AckOutbox(ctx context.Context, through raftstore.OutboxPos) error
	// EnableOutbox turns the outbox on with a limit, or changes the limit.
	EnableOutbox(ctx context.Context, limit int) error
	IsLeader() bool
	// LinearizableRead returns once this node's applied state holds every
	// committed entry (a barrier on a new leader): the acknowledged
	// position read after it is the previous leader's last one.
	LinearizableRead(ctx context.Context) error
	AppliedIndex() uint64
	// WaitForIndex returns once this node has applied idx (or ctx ends).
	WaitForIndex(ctx context.Context, idx uint64) error
}

// Errors that end a broker session (logged; the publisher reconnects).
var (
	ErrNacked         = errors.New("events: the broker refused a message (nack)")
	ErrConfirmTimeout = errors.New("events: no confirmation from the broker in time")
	ErrConnClosed     = errors.New("events: the broker connection closed")
)

// Stats are the publisher's counters since the process started.
type Stats struct {
	// Connected reports whether this node holds a broker connection (only
	// the leader does).
	Connected bool
	// Published counts messages the broker confirmed; Republished counts
	// messages this process published again after a reconnect (they carry
	// the message-id of the first publish).
	Published, Republished uint64
	// Confirmed is the newest outbox position the broker confirmed.
	Confirmed raftstore.OutboxPos
}

// Publisher publishes outbox events while this node leads. Build it with
// New, run it with Run.
type Publisher struct {
	cfg    Config
	url    string
	broker string // redactedURL(url), for the log
	log    *slog.Logger
	out    Outbox

	connected   atomic.Bool
	published   atomic.Uint64
	republished atomic.Uint64

	mu        sync.Mutex
	confirmed raftstore.OutboxPos // newest position the broker confirmed
	maxSent   raftstore.OutboxPos // newest position this process published
	acked     raftstore.OutboxPos // newest position written with AckOutbox
	lastAck   time.Time
	outage    bool      // logged "unreachable", not yet "reachable again"
	outageAt  time.Time // when the current outage began
	full      bool      // logged "outbox full", not yet "has room"
	seenDrops uint64    // status.Dropped when last looked at
}

// New checks cfg (reading URLFile) and returns a Publisher over out. It
// does not connect: Run does, on the leader.
func New(cfg Config, out Outbox) (*Publisher, error) {
	if out == nil {
		return nil, fmt.Errorf("%w: nil outbox", ErrBadConfig)
	}
	u, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	return &Publisher{cfg: cfg, url: u, broker: redactedURL(u), log: cfg.Logger.With("broker", redactedURL(u)), out: out}, nil
}

// Config returns the configuration with defaults filled in.
func (p *Publisher) Config() Config { return p.cfg }

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Connected: p.connected.Load(), Published: p.published.Load(),
		Republished: p.republished.Load(), Confirmed: p.confirmed}
}

// Run publishes while this node leads, until ctx ends. It never fails a
// write and never blocks the store: a broker outage only lets the outbox
// grow (up to its limit).
func (p *Publisher) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		if !p.out.IsLeader() {
			sleep(ctx, leaderPoll)
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		go p.watchLeadership(lctx, cancel)
		p.lead(lctx)
		cancel()
	}
	return nil
}

// closeTimeout bounds closing a broker connection.
const closeTimeout = 2 * time.Second

// leaderPoll is how often leadership is checked: losing it stops
// publishing within this time.
const leaderPoll = 50 * time.Millisecond

func (p *Publisher) watchLeadership(ctx context.Context, cancel context.CancelFunc) {
	t := time.NewTicker(leaderPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !p.out.IsLeader() {
				cancel()
				return
			}
		}
	}
}

// lead is one leadership: catch up, enable the outbox, then publish
// through broker sessions until leadership (ctx) ends.
func (p *Publisher) lead(ctx context.Context) {
	if !p.prepare(ctx) {
		return
	}
	p.log.Info("publishing change events", "after", posString(p.startPos()))
	backoff := time.Duration(p.cfg.MinBackoff)
	for ctx.Err() == nil {
		conn, err := p.cfg.Dial(p.url)
		if err == nil {
			var progressed bool
			progressed, err = p.session(ctx, conn)
			// With a deadline: a broker that stopped answering (the case a
			// confirmation timeout ends in) would never send close-ok, and
			// Close would wait for the heartbeat to give up.
			_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
			if progressed {
				backoff = time.Duration(p.cfg.MinBackoff)
			}
		}
		p.connected.Store(false)
		if ctx.Err() != nil {
			break
		}
		p.noteOutage(err)
		p.maybeAck(ctx, true)
		p.waitBackoff(ctx, backoff)
		backoff = min(2*backoff, time.Duration(p.cfg.MaxBackoff))
	}
	// A graceful stop (or a leadership transfer) records the last
	// confirmations, so that the next leader sends nothing twice.
	if p.out.IsLeader() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		p.maybeAck(actx, true)
		cancel()
	}
}

// prepare waits until the applied state is current (the previous
// leader's acknowledgements are in it) and the outbox is enabled with the
// configured limit. False when leadership ended first.
func (p *Publisher) prepare(ctx context.Context) bool {
	backoff := time.Duration(p.cfg.MinBackoff)
	for ctx.Err() == nil {
		err := p.out.LinearizableRead(ctx)
		if err == nil {
			st := p.out.OutboxStatus()
			if !st.Enabled || st.Limit != p.cfg.OutboxLimit {
				err = p.out.EnableOutbox(ctx, p.cfg.OutboxLimit)
				st = p.out.OutboxStatus()
			}
			if err == nil {
				p.mu.Lock()
				p.acked, p.lastAck, p.seenDrops = st.Acked, time.Now(), st.Dropped
				p.mu.Unlock()
				return true
			}
		}
		if ctx.Err() == nil {
			p.log.Warn("events: preparing the outbox failed; will retry", "error", err.Error())
		}
		sleep(ctx, backoff)
		backoff = min(2*backoff, time.Duration(p.cfg.MaxBackoff))
	}
	return false
}

// startPos is where publishing resumes: after what the log says was
// confirmed, or after what this process saw confirmed, if newer.
func (p *Publisher) startPos() raftstore.OutboxPos {
	st := p.out.OutboxStatus()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.confirmed.Less(st.Acked) {
		p.confirmed = st.Acked
	}
	return p.confirmed
}

func (p *Publisher) waitBackoff(ctx context.Context, d time.Duration) {
	end := time.Now().Add(d)
	for ctx.Err() == nil && time.Now().Before(end) {
		p.watchFull(p.out.OutboxStatus())
		sleep(ctx, min(time.Until(end), time.Second))
	}
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func posString(p raftstore.OutboxPos) string {
	if p.Seq == 0 {
		return fmt.Sprint(p.Index)
	}
	return fmt.Sprintf("%d.%d", p.Index, p.Seq)
}

// *raftstore.Store is an Outbox.
var _ Outbox = (*raftstore.Store)(nil)
