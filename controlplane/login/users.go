package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// errNoGrant: nothing stored to re-derive the user from (never signed in
// here, or the grant expired). Answered like a gone user, but nothing is
// deleted: the provider decided nothing.
var errNoGrant = errors.New("login: no stored grant for this identity")

// errNoStrategy: the grant names a strategy that is no longer configured.
var errNoStrategy = errors.New("login: the grant's strategy is not configured")

// currentUser re-derives the user of identity from its stored grant
// through its strategy, so a user removed from a team loses the role at
// the next credentials request. A rotated grant is stored again. When the
// provider says the user is gone (ErrUserGone) every session of the
// identity ends and the grant is deleted; other errors are transient and
// decide nothing. The caller has Synced (sessionFrom) before.
func (s *Service) currentUser(ctx context.Context, identity string) (User, error) {
	rec, found, err := s.backend.Record(KindGrant, KeyOf(identity))
	if err != nil {
		return User{}, fmt.Errorf("login: reading the grant: %w", err)
	}
	if !found || !rec.Expires.After(s.cfg.Now()) {
		return User{}, errNoGrant
	}
	var g Grant
	if err := json.Unmarshal(rec.Data, &g); err != nil {
		return User{}, fmt.Errorf("login: stored grant of %s is malformed: %w", identity, err)
	}
	st, ok := s.strategies[g.Strategy]
	if !ok {
		return User{}, fmt.Errorf("%w: %q", errNoStrategy, g.Strategy)
	}
	u, updated, changed, err := st.Refresh(ctx, g)
	if err == nil && u.ProviderID == "" {
		u.ProviderID = g.Strategy
	}
	if err == nil && u.Identity() != identity {
		// e.g. a GitHub login that now names another account: the identity
		// signed in is not this user any more.
		err = fmt.Errorf("%w: the provider now names %s", ErrUserGone, u.Identity())
	}
	if errors.Is(err, ErrUserGone) {
		if derr := s.endUser(ctx, identity); derr != nil {
			s.log.Warn("ending the sessions of a gone user failed", "identity", identity, "error", derr.Error())
		}
		return User{}, err
	}
	if err != nil {
		return User{}, fmt.Errorf("login: refreshing %s: %w", identity, err)
	}
	if changed {
		if updated.Strategy == "" {
			updated.Strategy = g.Strategy
		}
		if err := s.storeGrant(ctx, identity, updated); err != nil {
			// The user is valid now; the rotated grant is what is lost,
			// which a later refresh will show. Log and go on.
			s.log.Warn("storing a refreshed grant failed", "identity", identity, "error", err.Error())
		}
	}
	return u, nil
}
