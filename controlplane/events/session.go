package events

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tcauth/tcauth/raftstore"
)

// flight is a published message waiting for its confirmation (dc nil: an
// event that cannot be published, skipped in order).
type flight struct {
	pos raftstore.OutboxPos
	dc  *amqp.DeferredConfirmation
	at  time.Time
}

func (f flight) done() bool {
	if f.dc == nil {
		return true
	}
	select {
	case <-f.dc.Done():
		return true
	default:
		return false
	}
}

// session publishes on one connection until it fails or ctx ends. Events
// go out in outbox order on one confirm-mode channel, at most Window
// unconfirmed; the first nack, confirmation timeout or connection loss
// ends the session, and the next one starts again after the newest
// confirmed event, so nothing is skipped and the first occurrences of the
// messages stay in order. progressed reports whether anything was
// confirmed (the caller then resets its backoff).
func (p *Publisher) session(ctx context.Context, conn *amqp.Connection) (progressed bool, err error) {
	// The channel is not closed here: closing the connection (the caller,
	// with a deadline) closes it, and a channel close would wait for a
	// broker that may no longer answer.
	ch, err := p.openChannel(conn)
	if err != nil {
		return false, err
	}
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	p.connected.Store(true)
	noted := false

	wake := make(chan struct{}, 1)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go p.notifyApplied(wctx, wake)
	tick := time.NewTicker(time.Duration(p.cfg.AckInterval))
	defer tick.Stop()

	next := p.startPos()
	var inflight []flight
	// Slow start: one message in flight until the broker confirms one on
	// this connection. A broker that has just come back can take longer
	// than ConfirmTimeout to confirm its first message (it is recovering
	// its queues); the timeout then sends one message again, not a whole
	// window of messages it may well have taken.
	window := 1
	for {
		if ctx.Err() != nil {
			return progressed, ctx.Err()
		}
		if len(inflight) < window {
			var sent []flight
			sent, next, err = p.publishAfter(ctx, ch, next, window-len(inflight))
			inflight = append(inflight, sent...)
			if err != nil {
				return progressed, err
			}
		}
		var n int
		n, err = p.wait(ctx, inflight, connClosed, chClosed, wake, tick.C)
		inflight = inflight[n:]
		if n > 0 {
			window = p.cfg.Window
		}
		progressed = progressed || n > 0
		if err != nil {
			return progressed, err
		}
		// The outage is over once the broker takes messages again (or
		// there is nothing to send): a broker that accepts connections but
		// nacks every message is still an outage.
		if !noted && (progressed || len(inflight) == 0) {
			noted = true
			p.noteConnected()
		}
		p.maybeAck(ctx, false)
	}
}

// wait waits for the oldest confirmation, new events, the ack tick or
// the end of the session, and returns how many flights were settled.
func (p *Publisher) wait(ctx context.Context, inflight []flight, connClosed, chClosed <-chan *amqp.Error,
	wake <-chan struct{}, tick <-chan time.Time) (int, error) {
	var oldest <-chan struct{}
	var timeout <-chan time.Time
	if len(inflight) > 0 {
		oldest = closedCh
		if inflight[0].dc != nil {
			oldest = inflight[0].dc.Done()
		}
		t := time.NewTimer(time.Until(inflight[0].at.Add(time.Duration(p.cfg.ConfirmTimeout))))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case e := <-connClosed:
		return 0, closeErr(e)
	case e := <-chClosed:
		return 0, closeErr(e)
	case <-timeout:
		return 0, ErrConfirmTimeout
	case <-oldest:
		return p.settle(inflight)
	case <-wake:
	case <-tick:
	}
	return 0, nil
}

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func closeErr(e *amqp.Error) error {
	if e == nil {
		return ErrConnClosed
	}
	return fmt.Errorf("%w: %s", ErrConnClosed, e.Error())
}

// openChannel opens a confirm-mode channel and declares the six durable
// topic exchanges (as Taskcluster's publisher does).
func (p *Publisher) openChannel(conn *amqp.Connection) (*amqp.Channel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		return nil, fmt.Errorf("confirm mode: %w", err)
	}
	for _, name := range Exchanges {
		if err := ch.ExchangeDeclare(p.cfg.ExchangePrefix+name, "topic", true, false, false, false, nil); err != nil {
			return nil, fmt.Errorf("declaring exchange %s: %w", p.cfg.ExchangePrefix+name, err)
		}
	}
	return ch, nil
}

// publishAfter publishes up to max events after pos, in order, and
// returns them in flight with the position reached.
func (p *Publisher) publishAfter(ctx context.Context, ch *amqp.Channel, pos raftstore.OutboxPos, max int) ([]flight, raftstore.OutboxPos, error) {
	evs, st := p.out.OutboxEvents(pos, max)
	p.watchFull(st)
	if !p.out.IsLeader() {
		return nil, pos, nil
	}
	var out []flight
	for _, ev := range evs {
		msg, err := Build(p.cfg.ExchangePrefix, ev)
		if err != nil {
			// Not publishable in any form (an unknown kind from a newer
			// version): skip it in order rather than stall the stream.
			p.log.Error("events: skipping an event that cannot be published", "id", ev.MessageID(), "error", err.Error())
			out = append(out, flight{pos: ev.Pos(), at: time.Now()})
			pos = ev.Pos()
			continue
		}
		msg.Timestamp = time.Now().UTC().Truncate(time.Second)
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, msg.Exchange, RoutingKey, false, false, msg.Publishing)
		if err != nil {
			return out, pos, fmt.Errorf("publish: %w", err)
		}
		p.mu.Lock()
		if !p.maxSent.Less(ev.Pos()) {
			p.republished.Add(1)
		} else {
			p.maxSent = ev.Pos()
		}
		p.mu.Unlock()
		out = append(out, flight{pos: ev.Pos(), dc: dc, at: time.Now()})
		pos = ev.Pos()
	}
	return out, pos, nil
}

// settle takes the confirmed flights from the front (in order) and
// returns how many; a nack ends the session.
func (p *Publisher) settle(inflight []flight) (int, error) {
	n := 0
	for _, f := range inflight {
		if !f.done() {
			break
		}
		if f.dc != nil && !f.dc.Acked() {
			return n, ErrNacked
		}
		p.mu.Lock()
		if p.confirmed.Less(f.pos) {
			p.confirmed = f.pos
		}
		p.mu.Unlock()
		if f.dc != nil {
			p.published.Add(1)
		}
		n++
	}
	return n, nil
}

// notifyApplied signals wake whenever this node applies a new entry, so
// new events are published at once without polling.
func (p *Publisher) notifyApplied(ctx context.Context, wake chan<- struct{}) {
	for {
		idx := p.out.AppliedIndex()
		if err := p.out.WaitForIndex(ctx, idx+1); err != nil {
			return
		}
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}

// maybeAck writes the confirmed position to the log when it moved and
// AckInterval has passed (or force). A failure is retried next time: the
// outbox then only holds a few more events than it must.
func (p *Publisher) maybeAck(ctx context.Context, force bool) {
	p.mu.Lock()
	through, due := p.confirmed, p.acked.Less(p.confirmed) && (force || time.Since(p.lastAck) >= time.Duration(p.cfg.AckInterval))
	p.mu.Unlock()
	if !due || !p.out.IsLeader() {
		return
	}
	if err := p.out.AckOutbox(ctx, through); err != nil {
		if ctx.Err() == nil {
			p.log.Debug("events: recording confirmed progress failed; will retry", "error", err.Error())
		}
		return
	}
	p.mu.Lock()
	if p.acked.Less(through) {
		p.acked = through
	}
	p.lastAck = time.Now()
	p.mu.Unlock()
}

// noteOutage logs the start of an outage, once.
func (p *Publisher) noteOutage(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.outage {
		return
	}
	p.outage, p.outageAt = true, time.Now()
	msg := "unknown error"
	if err != nil {
		msg = redact(err.Error(), p.url)
	}
	p.log.Warn("events: the broker is unreachable or refuses messages; changes wait in the outbox", "error", msg)
}

// noteConnected logs the end of an outage (or the first connection).
func (p *Publisher) noteConnected() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.outage {
		p.log.Info("events: the broker is reachable again", "outage", time.Since(p.outageAt).Round(time.Millisecond).String())
		p.outage = false
		return
	}
	p.log.Info("events: connected to the broker")
}

// watchFull logs, once each, when the outbox fills or starts dropping
// events, and when it has room again.
func (p *Publisher) watchFull(st raftstore.OutboxStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	dropped := st.Dropped > p.seenDrops
	full := st.Enabled && (st.Pending >= st.Limit || dropped)
	switch {
	case full && !p.full:
		p.full = true
		p.log.Warn("events: the outbox is full; the oldest unpublished changes are dropped until the broker takes them",
			"limit", st.Limit, "pending", st.Pending, "droppedTotal", st.Dropped, "lastDropped", posString(st.LastDropped))
	case !full && p.full && st.Pending < st.Limit:
		p.full = false
		p.log.Info("events: the outbox has room again", "limit", st.Limit, "pending", st.Pending, "droppedTotal", st.Dropped)
	}
	if dropped {
		p.seenDrops = st.Dropped
	}
}
