package raftstore

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// LoginRecord is one entry of the login service's replicated state: a
// browser session, a provider grant, a pending consent, an OAuth2 code or
// token. Key is a hash of the secret (the login service stores
// sha256(secret) only), so a backup or a log reader learns nothing that
// signs anybody in; SealedData is sealed by the leader with the Keyring
// under an id naming kind and key (SealLoginData), so it can be moved
// neither to another record nor into a client's token. Records are
// immutable once stored, like clients.
type LoginRecord struct {
	Kind       string    `json:"kind"`
	Key        string    `json:"key"`
	Identity   string    `json:"identity,omitempty"`
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires"`
	SealedData []byte    `json:"sealedData,omitempty"`
}

// Login-state writes. They are not client or role changes: they are
// neither audited nor in the change feed.
//
//	login-put     store Login; with Create, ErrConflict if (kind, key) exists;
//	              with MaxPerIdentity > 0, the oldest other records of the
//	              same kind and identity (by Created, then Key) are deleted
//	              until at most MaxPerIdentity remain, the new one included;
//	              Count = how many were deleted
//	login-take    delete and return (Kind, Key) if present and Expires > Time;
//	              ErrNotFound otherwise (nothing changes) — single use
//	login-delete  delete (Kind, Keys), or with Keys empty every record of
//	              Kind held by Identity; Count
//	login-purge   delete every record with Expires before Time; Count
const (
	OpLoginPut    Op = "login-put"
	OpLoginTake   Op = "login-take"
	OpLoginDelete Op = "login-delete"
	OpLoginPurge  Op = "login-purge"
)

// Bounds of login records: a command outside them is ErrBadCommand and
// changes nothing, so no caller can grow the replicated state without
// limit through one record.
const (
	MaxLoginKind       = 32
	MaxLoginKey        = 128
	MaxLoginIdentity   = 512
	MaxLoginSealedData = 64 << 10
	MaxLoginDeleteKeys = 1000
)

// loginIndexKey is the map key of a (kind, key) or (kind, identity) pair.
// Kinds hold no NUL (checked), so the first NUL separates the parts.
func loginIndexKey(kind, rest string) string { return kind + "\x00" + rest }

// loginSealID is the keyring id of a record's data. It starts with a NUL,
// which no clientId may contain, so a client's sealed token can never be
// opened as login data, nor login data as a token (nor as a peer ticket,
// whose id is another NUL-prefixed constant).
func loginSealID(kind, key string) string { return "\x00tcauth/login/" + kind + "\x00" + key }

var errBadLogin = fmt.Errorf("%w: login record", ErrBadCommand)

func checkLoginName(what, v string, max int) error {
	if v == "" || len(v) > max || strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%w: %s must be 1-%d bytes without NUL", errBadLogin, what, max)
	}
	return nil
}

func (r *LoginRecord) check() error {
	if err := checkLoginName("kind", r.Kind, MaxLoginKind); err != nil {
		return err
	}
	if err := checkLoginName("key", r.Key, MaxLoginKey); err != nil {
		return err
	}
	if len(r.Identity) > MaxLoginIdentity || strings.IndexByte(r.Identity, 0) >= 0 {
		return fmt.Errorf("%w: identity must be at most %d bytes without NUL", errBadLogin, MaxLoginIdentity)
	}
	if len(r.SealedData) > MaxLoginSealedData {
		return fmt.Errorf("%w: sealed data exceeds %d bytes", errBadLogin, MaxLoginSealedData)
	}
	return nil
}

func (s *state) putLogin(r *LoginRecord) {
	k := loginIndexKey(r.Kind, r.Key)
	if old, ok := s.logins[k]; ok {
		s.unindexLogin(old)
	}
	s.logins[k] = r
	if r.Identity != "" {
		ik := loginIndexKey(r.Kind, r.Identity)
		set := s.loginsByIdentity[ik]
		if set == nil {
			set = map[string]struct{}{}
			s.loginsByIdentity[ik] = set
		}
		set[r.Key] = struct{}{}
	}
}

func (s *state) unindexLogin(r *LoginRecord) {
	if r.Identity == "" {
		return
	}
	ik := loginIndexKey(r.Kind, r.Identity)
	if set := s.loginsByIdentity[ik]; set != nil {
		delete(set, r.Key)
		if len(set) == 0 {
			delete(s.loginsByIdentity, ik)
		}
	}
}

func (s *state) deleteLogin(kind, key string) bool {
	k := loginIndexKey(kind, key)
	old, ok := s.logins[k]
	if !ok {
		return false
	}
	delete(s.logins, k)
	s.unindexLogin(old)
	return true
}

// identityLogins are the records of kind held by identity, oldest first
// (Created, then Key): the deterministic order of eviction.
func (s *state) identityLogins(kind, identity string) []*LoginRecord {
	set := s.loginsByIdentity[loginIndexKey(kind, identity)]
	out := make([]*LoginRecord, 0, len(set))
	for key := range set {
		out = append(out, s.logins[loginIndexKey(kind, key)])
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// applyLogin executes a login-state command. Every check comes before the
// first change, so a rejected command changes nothing.
func (s *state) applyLogin(cmd *Command) (ApplyResult, error) {
	var res ApplyResult
	switch cmd.Op {
	case OpLoginPut:
		r := cmd.Login
		if r == nil {
			return res, fmt.Errorf("%w: login-put needs a record", ErrBadCommand)
		}
		if err := r.check(); err != nil {
			return res, err
		}
		if cmd.MaxPerIdentity < 0 {
			return res, fmt.Errorf("%w: negative maxPerIdentity", ErrBadCommand)
		}
		if old, ok := s.logins[loginIndexKey(r.Kind, r.Key)]; ok && cmd.Create {
			res.Login = old
			return res, ErrConflict
		}
		nr := *r
		nr.SealedData = slices.Clone(r.SealedData)
		s.putLogin(&nr)
		if cmd.MaxPerIdentity > 0 && nr.Identity != "" {
			all := s.identityLogins(nr.Kind, nr.Identity)
			for _, old := range all {
				if len(all)-res.Count <= cmd.MaxPerIdentity {
					break
				}
				if old.Key != nr.Key { // the record just put always stays
					s.deleteLogin(old.Kind, old.Key)
					res.Count++
				}
			}
		}
		res.Login = &nr
	case OpLoginTake:
		if err := checkLoginName("kind", cmd.Kind, MaxLoginKind); err != nil {
			return res, err
		}
		if err := checkLoginName("key", cmd.Key, MaxLoginKey); err != nil {
			return res, err
		}
		if cmd.Time.IsZero() {
			return res, fmt.Errorf("%w: login-take needs a time", ErrBadCommand)
		}
		r, ok := s.logins[loginIndexKey(cmd.Kind, cmd.Key)]
		if !ok || !r.Expires.After(cmd.Time) {
			return res, ErrNotFound
		}
		s.deleteLogin(r.Kind, r.Key)
		res.Login, res.Count = r, 1
	case OpLoginDelete:
		return s.applyLoginDelete(cmd)
	case OpLoginPurge:
		if cmd.Time.IsZero() {
			return res, fmt.Errorf("%w: login-purge needs a time", ErrBadCommand)
		}
		var gone []*LoginRecord
		for _, r := range s.logins {
			if r.Expires.Before(cmd.Time) {
				gone = append(gone, r)
			}
		}
		for _, r := range gone {
			s.deleteLogin(r.Kind, r.Key)
		}
		res.Count = len(gone)
	default:
		return res, fmt.Errorf("%w: unknown op %q", ErrBadCommand, cmd.Op)
	}
	return res, nil
}

func (s *state) applyLoginDelete(cmd *Command) (ApplyResult, error) {
	var res ApplyResult
	if err := checkLoginName("kind", cmd.Kind, MaxLoginKind); err != nil {
		return res, err
	}
	if len(cmd.Keys) > MaxLoginDeleteKeys {
		return res, fmt.Errorf("%w: more than %d keys", ErrBadCommand, MaxLoginDeleteKeys)
	}
	for _, k := range cmd.Keys {
		if err := checkLoginName("key", k, MaxLoginKey); err != nil {
			return res, err
		}
	}
	if len(cmd.Keys) == 0 {
		// An empty identity would otherwise mean "nothing" here and
		// could be mistaken for "everyone"; refuse it instead.
		if err := checkLoginName("identity", cmd.Identity, MaxLoginIdentity); err != nil {
			return res, fmt.Errorf("%w: login-delete needs keys or an identity (%v)", ErrBadCommand, err)
		}
		for _, r := range s.identityLogins(cmd.Kind, cmd.Identity) {
			s.deleteLogin(r.Kind, r.Key)
			res.Count++
		}
		return res, nil
	}
	for _, k := range cmd.Keys {
		if s.deleteLogin(cmd.Kind, k) {
			res.Count++
		}
	}
	return res, nil
}

// isLoginOp reports whether op is a login-state write.
func isLoginOp(op Op) bool {
	return op == OpLoginPut || op == OpLoginTake || op == OpLoginDelete || op == OpLoginPurge
}

// ---- Store: login records ----

// LoginRecord returns a copy of a stored login record (its data still
// sealed: OpenLoginData).
func (s *Store) LoginRecord(kind, key string) (LoginRecord, bool) {
	s.fsm.mu.RLock()
	r, ok := s.fsm.st.logins[loginIndexKey(kind, key)]
	s.fsm.mu.RUnlock()
	if !ok {
		return LoginRecord{}, false
	}
	out := *r
	out.SealedData = slices.Clone(r.SealedData)
	return out, true
}

// LoginRecordCount is the number of stored login records.
func (s *Store) LoginRecordCount() int {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	return len(s.fsm.st.logins)
}

// SealLoginData seals a login record's data with the primary key, bound
// to its kind and key, for a login-put command.
func (s *Store) SealLoginData(kind, key string, data []byte) ([]byte, error) {
	return s.cfg.Keyring.Seal(loginSealID(kind, key), data)
}

// OpenLoginData opens rec's sealed data (nil for none).
func (s *Store) OpenLoginData(rec LoginRecord) ([]byte, error) {
	if len(rec.SealedData) == 0 {
		return nil, nil
	}
	return s.cfg.Keyring.Open(loginSealID(rec.Kind, rec.Key), rec.SealedData)
}
