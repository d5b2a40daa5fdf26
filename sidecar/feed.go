package sidecar

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/tcauth/tcauth/scopeengine"
)

// follow keeps the local state in step with the control plane until ctx
// ends: learn the current index, load the roles, then long-poll the change
// feed and apply each change (client → evict it; role → refetch it into
// the resolver and drop the cached clients, whose expandedScopes were
// computed with the old role; 410 → drop everything and start over).
func (v *localVerifier) follow(ctx context.Context, log *slog.Logger) {
	backoff := 100 * time.Millisecond
	var index uint64
	synced := false
	fail := func(what string, err error) {
		if ctx.Err() != nil {
			return
		}
		v.feedFailing.Store(true)
		v.m.cpErrors.WithLabelValues(what).Inc()
		log.Warn("control plane unreachable", "op", what, "err", err.Error(), "retryIn", backoff.String())
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	for ctx.Err() == nil {
		if !synced {
			// Index first, roles second: a change landing in between is
			// replayed by the poll, and applying a change twice is
			// harmless.
			cur, err := v.cp.currentIndex(ctx)
			if err != nil {
				fail("changes", err)
				continue
			}
			if err := v.reloadRoles(ctx, cur); err != nil {
				fail("roles", err)
				continue
			}
			index = cur
			synced = true
			v.markSynced(index)
			log.Info("synchronised with the control plane", "index", index, "roles", v.roles.Load().resolver.Len())
		}
		pollStart := v.now()
		v.pollStarted.Store(pollStart.UnixNano())
		resp, err := v.cp.changes(ctx, index, v.cfg.FeedWait)
		v.pollStarted.Store(0)
		if err != nil && !errors.Is(err, errFeedExpired) && !v.feedFailing.Load() && ctx.Err() == nil {
			// An open long poll is a live subscription: the control plane
			// answers at once on a change, and a dead peer shows up as a
			// reset. So the sidecar was current until this failure —
			// unless the poll hung past its wait, when nothing is known
			// after it started.
			known := v.now()
			if known.Sub(pollStart) > v.cfg.FeedWait+feedGrace {
				known = pollStart
			}
			v.lastSync.Store(known.UnixNano())
		}
		if errors.Is(err, errFeedExpired) {
			log.Warn("change feed history expired; dropping all caches", "after", index)
			v.m.feedEvents.WithLabelValues("expired").Inc()
			v.purgeAll(0)
			synced = false
			continue
		}
		if err != nil {
			fail("changes", err)
			continue
		}
		backoff = 100 * time.Millisecond
		if err := v.apply(ctx, resp.Changes, log); err != nil {
			// A role we could not fetch: start over from a full load
			// rather than run with a role set we know is wrong.
			v.purgeAll(0)
			synced = false
			fail("roles", err)
			continue
		}
		if resp.Index > index {
			index = resp.Index
		}
		v.markSynced(index)
		v.pruneTombstones()
	}
}

func (v *localVerifier) markSynced(index uint64) {
	now := v.now()
	v.lastSync.Store(now.UnixNano())
	v.feedFailing.Store(false)
	v.feedIndex.Store(index)
	v.m.feedIndex.Set(float64(index))
	v.m.lastSync.Set(float64(now.UnixNano()) / 1e9)
}

// apply handles one batch of changes. Role changes are folded into one new
// resolver and published once, so a burst of role edits costs one
// generation change, and Resolver.Put recomputes only the changed roles'
// ancestors (full rebuilds per change hurt the reference: taskcluster#8197).
func (v *localVerifier) apply(ctx context.Context, changes []changeEvent, log *slog.Logger) error {
	snap := v.roles.Load()
	res := snap.resolver
	var roleIndex uint64
	for _, c := range changes {
		switch c.Kind {
		case "client":
			v.m.feedEvents.WithLabelValues("client").Inc()
			v.evictClient(c.ID, c.Index)
		case "role":
			v.m.feedEvents.WithLabelValues("role").Inc()
			roleIndex = max(roleIndex, c.Index)
			if c.Deleted {
				res = res.Delete(c.ID)
				continue
			}
			role, ok, err := v.cp.role(ctx, c.ID)
			if err != nil {
				return err
			}
			if !ok {
				res = res.Delete(c.ID)
			} else if next, err := res.Put(scopeengine.Role{RoleID: role.RoleID, Scopes: role.Scopes}); err != nil {
				// Roles read one by one can be momentarily inconsistent
				// (a cycle half-edited); a full reload sees one state.
				log.Warn("role update did not apply; reloading all roles", "role", c.ID, "err", err.Error())
				return v.reloadRoles(ctx, roleIndex)
			} else {
				res = next
			}
		default:
			log.Warn("unknown change kind in feed", "kind", c.Kind, "id", c.ID)
		}
	}
	if roleIndex > 0 {
		v.setRoles(res)
		// Cached clients hold expansions under the old role set; each is
		// re-expanded from its own scopes on its next use (clients
		// fetched from a control plane that does not send their own
		// scopes are refetched). Answers read before roleIndex are
		// refused. Keeping the clients matters when the control plane is
		// down: a role edit just before an outage must not turn every
		// cached caller into a 503.
		v.rolesChanged(roleIndex)
	}
	return nil
}

// reloadRoles replaces the whole role set; clients cached before index are
// dropped with it (a full reload can hide any role change).
func (v *localVerifier) reloadRoles(ctx context.Context, index uint64) error {
	list, err := v.cp.roles(ctx)
	if err != nil {
		return err
	}
	roles := make([]scopeengine.Role, len(list))
	for i, r := range list {
		roles[i] = scopeengine.Role{RoleID: r.RoleID, Scopes: r.Scopes}
	}
	res, err := scopeengine.NewResolver(roles)
	if err != nil {
		return err
	}
	v.setRoles(res)
	v.purgeAll(index)
	return nil
}
