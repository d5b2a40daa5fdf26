package controlplane

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// Writes of the background jobs (see the table above OpCreateClient).
const (
	OpTouchClients         = Op("touch-clients")
	OpDeleteExpiredClients = Op("delete-expired-clients")
	OpPurgeAudit           = Op("purge-audit")
	OpSyncStaticClients    = Op("sync-static-clients")
)

// Run runs the background jobs until ctx ends. On the leader only:
// publishing its API address, syncing static clients on leadership
// acquisition, deleting expired clients, purging old audit rows and
// committing batched lastDateUsed updates (followers forward their batches
// to the leader instead), deleting expired managed Sentry keys, and
// publishing change events (Config.Events; package events).
func (s *Server) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	defer s.cloud.wg.Wait()
	defer s.runEvents(ctx)()
	if s.login != nil {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			if err := s.login.Run(ctx); err != nil {
				s.log.Error("login service jobs stopped", "error", err.Error())
			}
		}()
	}
	wasLeader := false
	var lastExpiry, lastPurge, lastFlush time.Time
	for {
		now := time.Now()
		leader := s.store.IsLeader()
		// The leader publishes its API address (through the log) so that
		// followers can forward to it; only the leader's address matters.
		if leader && s.cfg.AdvertiseURL != "" && s.store.LeaderAPIAddress() != s.cfg.AdvertiseURL {
			if err := s.store.PublishAPIAddress(ctx, s.cfg.AdvertiseURL); err != nil {
				s.log.Warn("publishing the API address failed; will retry", "error", err.Error())
			}
		}
		if leader && !wasLeader {
			// New leadership: run the periodic jobs soon, and sync statics.
			lastExpiry, lastPurge = time.Time{}, time.Time{}
			s.cloud.lastPurge.Store(0)
			s.staticMu.Lock()
			s.staticSynced = false
			s.staticMu.Unlock()
		}
		wasLeader = leader
		if leader {
			if err := s.SyncStaticClients(ctx); err != nil {
				s.log.Warn("static client sync failed; will retry", "error", err.Error())
			} else {
				s.checkLoginIssuer()
			}
			if now.Sub(lastExpiry) >= s.cfg.ExpiryInterval {
				if err := s.DeleteExpiredClients(ctx); err == nil {
					lastExpiry = now
				}
			}
			if now.Sub(lastPurge) >= s.cfg.AuditPurgeInterval {
				if err := s.PurgeAudit(ctx); err == nil {
					lastPurge = now
				}
			}
			s.maybePurgeSentry(ctx, now)
		}
		if now.Sub(lastFlush) >= s.cfg.LastUsedInterval {
			s.FlushLastUsed(ctx)
			lastFlush = now
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// SyncStaticClients makes the stored static/ clients equal the configured
// ones, once per leadership (no-op when already synced).
func (s *Server) SyncStaticClients(ctx context.Context) error {
	s.staticMu.Lock()
	defer s.staticMu.Unlock()
	if s.staticSynced {
		return nil
	}
	if !s.needsStaticSync() {
		s.staticSynced = true
		return nil
	}
	err := s.apply(ctx, Command{Op: OpSyncStaticClients, Time: s.cfg.Now(), Actor: "static/taskcluster/auth", Static: s.static})
	if err != nil {
		return err
	}
	s.staticSynced = true
	s.log.Info("static clients synced", "count", len(s.static))
	return nil
}

// needsStaticSync compares configuration and store so that a restart does
// not write a Raft entry when nothing changed.
func (s *Server) needsStaticSync() bool {
	want := map[string]StaticClient{}
	for _, c := range s.static {
		want[c.ClientID] = c
	}
	stored, _ := s.store.ListClients("static/", 0, 1<<30)
	if len(stored) != len(want) {
		return true
	}
	for _, rec := range stored {
		c, ok := want[rec.ClientID]
		if !ok || rec.Description != c.Description || !slices.Equal(rec.Scopes, c.Scopes) {
			return true
		}
		token, ok, err := s.store.AccessToken(rec.ClientID)
		if err != nil || !ok || subtle.ConstantTimeCompare([]byte(token), []byte(c.AccessToken)) != 1 {
			return true
		}
	}
	return false
}

// DeleteExpiredClients deletes clients whose expires has passed and that
// have deleteOnExpiration (audit "expired" by static/taskcluster/auth).
func (s *Server) DeleteExpiredClients(ctx context.Context) error {
	return s.apply(ctx, Command{Op: OpDeleteExpiredClients, Time: s.cfg.Now(), Actor: "static/taskcluster/auth"})
}

// PurgeAudit deletes audit rows older than the retention.
func (s *Server) PurgeAudit(ctx context.Context) error {
	now := s.cfg.Now()
	return s.apply(ctx, Command{Op: OpPurgeAudit, Time: now, Before: now.Add(-s.cfg.AuditRetention)})
}

// FlushLastUsed commits (leader) or forwards (follower) the collected
// lastDateUsed bumps as one batch; undelivered batches are kept.
func (s *Server) FlushLastUsed(ctx context.Context) {
	batch := s.lastUsed.take()
	if len(batch) == 0 {
		return
	}
	var err error
	if s.store.IsLeader() {
		err = s.apply(ctx, Command{Op: OpTouchClients, Time: s.cfg.Now(), LastUsed: batch})
	} else {
		err = s.sendLastUsed(ctx, batch)
	}
	if err != nil {
		s.log.Warn("lastDateUsed batch not delivered; keeping it", "clients", len(batch), "error", err.Error())
		s.lastUsed.putBack(batch)
	}
}

func (s *Server) sendLastUsed(ctx context.Context, batch map[string]time.Time) error {
	leader := s.store.LeaderAPIAddress()
	if leader == "" {
		return ErrNotLeader
	}
	body := map[string]map[string]string{"lastUsed": {}}
	for id, t := range batch {
		body["lastUsed"][id] = protocol.FormatTime(t)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ForwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, leader+apiPrefix+"/tcauth/internal/last-used", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	ticket, err := s.peers.issue(purposeLastUsed, b)
	if err != nil {
		return err
	}
	req.Header.Set(peerHeader, ticket)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("leader answered %d", resp.StatusCode)
	}
	return nil
}

// checkLoginIssuer warns, once, when the login service's issuer client
// does not exist: every credentials request would then fail. Checked on
// the leader after its static clients are synced (the issuer is usually
// one of them).
func (s *Server) checkLoginIssuer() {
	if s.login == nil || s.issuerChecked {
		return
	}
	s.issuerChecked = true
	if _, ok := s.store.Client(s.login.Issuer()); !ok {
		s.log.Warn("the login service's issuer client does not exist: users cannot get credentials until it is created or configured as a static client",
			"issuer", s.login.Issuer())
	}
}
