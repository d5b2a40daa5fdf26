package controlplane

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tcauth/tcauth/controlplane/events"
)

// outbox gives the publisher the replicated store itself: the outbox is
// raftstore's, not part of the Store interface (an in-memory Store has
// none).
func (a raftStore) outbox() events.Outbox { return a.rs }

// startEvents builds the change-event publisher from Config.Events (nil:
// none). It runs on every node and publishes only while the node leads
// (package events).
func (s *Server) startEvents() error {
	if s.cfg.Events == nil {
		return nil
	}
	src, ok := s.store.(interface{ outbox() events.Outbox })
	if !ok {
		return errors.New("controlplane: change events need the Raft store, which keeps the replicated outbox")
	}
	ec := *s.cfg.Events
	if ec.Logger == nil {
		ec.Logger = s.log
	}
	out := src.outbox()
	p, err := events.New(ec, out)
	if err != nil {
		return err
	}
	s.events = p
	s.metrics.registerEvents(p, out)
	return nil
}

// runEvents runs the publisher until ctx ends; the returned function
// waits for it to stop.
func (s *Server) runEvents(ctx context.Context) (wait func()) {
	if s.events == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.events.Run(ctx)
	}()
	return func() { <-done }
}

// registerEvents adds the publisher's metrics. The outbox figures are this
// node's applied state (the same on every node); the publisher's are this
// node's (only the leader publishes).
func (m *metrics) registerEvents(p *events.Publisher, out events.Outbox) {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	m.reg.MustRegister(
		gauge("tcauth_events_outbox_pending", "Change events in the replicated outbox not yet confirmed by the broker.",
			func() float64 { return float64(out.OutboxStatus().Pending) }),
		gauge("tcauth_events_outbox_limit", "Bound of the replicated outbox; when full, the oldest event is dropped.",
			func() float64 { return float64(out.OutboxStatus().Limit) }),
		counter("tcauth_events_outbox_dropped_total", "Change events dropped because the outbox was full.",
			func() float64 { return float64(out.OutboxStatus().Dropped) }),
		counter("tcauth_events_published_total", "Change events this node published and the broker confirmed.",
			func() float64 { return float64(p.Stats().Published) }),
		counter("tcauth_events_republished_total", "Change events this node published again (same message-id) after a reconnect.",
			func() float64 { return float64(p.Stats().Republished) }),
		gauge("tcauth_events_broker_connected", "1 while this node (the leader) holds a broker connection.",
			func() float64 {
				if p.Stats().Connected {
					return 1
				}
				return 0
			}),
	)
}
