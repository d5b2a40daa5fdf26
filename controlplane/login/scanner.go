package login

import (
	"context"
	"errors"

	"github.com/tcauth/tcauth/scopeengine"
)

// scanVerdict is what one scan decided about an identity: gone (disable
// all its clients), unknown (a transient error: decide nothing this
// round), or the scopes its user holds now.
type scanVerdict struct {
	gone, unknown bool
	have          scopeengine.ScopeSet
}

// ScanClients disables the clients of users who lost their rights, as
// web-server's scanner does: for every strategy, every enabled client
// under "<strategy>/" whose identity (its first two segments) is gone at
// the provider — or has nothing stored to re-derive it from —, or whose
// user's expanded scopes (with assume:anonymous) no longer satisfy every
// expanded scope of the client, is disabled with the issuer as the audit
// actor. Each identity is re-derived once per scan, however many clients
// it has. A transient provider error skips that identity this round. It
// returns how many clients it disabled. Disabled clients stay disabled.
func (s *Service) ScanClients(ctx context.Context) (int, error) {
	if err := s.backend.Sync(ctx); err != nil {
		return 0, err
	}
	verdicts := map[string]scanVerdict{}
	disabled := 0
	for _, name := range s.order {
		for _, c := range s.backend.ListClients(name + "/") {
			if err := ctx.Err(); err != nil {
				return disabled, err
			}
			if c.Disabled {
				continue
			}
			identity, ok := IdentityFromClientID(c.ClientID)
			if !ok {
				continue
			}
			v, seen := verdicts[identity]
			if !seen {
				v = s.judge(ctx, identity)
				verdicts[identity] = v
			}
			reason := s.scanReason(v, c)
			if reason == "" {
				continue
			}
			if s.disable(ctx, c.ClientID, identity, reason) {
				disabled++
			}
		}
	}
	return disabled, nil
}

// judge re-derives identity's user once for this scan.
func (s *Service) judge(ctx context.Context, identity string) scanVerdict {
	u, err := s.currentUser(ctx, identity)
	switch {
	case errors.Is(err, ErrUserGone) || errors.Is(err, errNoGrant):
		return scanVerdict{gone: true}
	case err != nil:
		s.log.Warn("client scan: cannot re-derive a user; skipped this round", "identity", identity, "error", err.Error())
		return scanVerdict{unknown: true}
	}
	return scanVerdict{have: s.backend.Resolver().Expand(append(u.Scopes(), "assume:anonymous"))}
}

// scanReason is why client c must be disabled ("" to keep it).
func (s *Service) scanReason(v scanVerdict, c Client) string {
	switch {
	case v.unknown:
		return ""
	case v.gone:
		return "the user is gone at the provider"
	case !v.have.SatisfiesAll(s.backend.Resolver().Expand(c.Scopes)):
		return "the user no longer holds the client's scopes"
	}
	return ""
}

func (s *Service) disable(ctx context.Context, clientID, identity, reason string) bool {
	err := s.backend.DisableClient(ctx, clientID, s.cfg.Issuer)
	switch {
	case errors.Is(err, ErrNotFound):
		return false // deleted meanwhile
	case err != nil:
		s.log.Warn("client scan: disabling a client failed", "clientId", clientID, "error", err.Error())
		return false
	}
	s.log.Info("client scan: disabled a client", "clientId", clientID, "identity", identity, "reason", reason)
	return true
}
