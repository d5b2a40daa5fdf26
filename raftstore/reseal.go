package raftstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sort"
)

// Re-sealing after a keyring rotation (docs/operations.md "Rotate the
// keyring"). Once every node's keyring has the new primary, what older
// terms sealed — client access tokens and login records' data — must be
// sealed again under the primary before the old term can be removed from
// the keyring files. The leader opens each such blob and proposes the new
// ciphertext together with the old one, a bounded batch per entry:
//
//	reseal-tokens  Reseal: for each item, the stored blob is replaced by New
//	               only if it is still exactly Old, so a concurrent
//	               reset-access-token (or login-put) wins, and replaying or
//	               repeating the entry changes nothing; Count = replaced
//
// The plaintext is unchanged, so the op is neither audited nor in the
// change feed, and LastModified stays as it was. It needs format 3: an
// older release would reject the unknown op and keep the old ciphertext,
// a state the other nodes do not hold.
const OpResealTokens Op = "reseal-tokens"

// ResealItem replaces one sealed blob: a client's access token (Kind
// empty, ID its clientId) or a login record's data (Kind the record's
// kind, ID its key).
type ResealItem struct {
	Kind string `json:"kind,omitempty"`
	ID   string `json:"id"`
	Old  []byte `json:"old"`
	New  []byte `json:"new"`
}

// Bounds of a reseal-tokens entry: at most MaxResealItems items and about
// MaxResealBytes of ciphertext (an entry holds at least one item), so that
// no entry is large however many tokens need re-sealing.
const (
	MaxResealItems = 256
	MaxResealBytes = 512 << 10
)

// ResealReport is what ResealTokens did and what remains: how many blobs
// each term still seals, after the last entry was applied on the leader.
type ResealReport struct {
	Primary           uint32         `json:"primary"`
	ResealedTokens    int            `json:"resealedTokens"`
	ResealedLoginData int            `json:"resealedLoginData"`
	Entries           int            `json:"entries"`
	TokensByTerm      map[uint32]int `json:"tokensByTerm"`
	LoginDataByTerm   map[uint32]int `json:"loginDataByTerm"`
	// Unopenable counts blobs the leader's keyring could not open (a term
	// it lacks); they are left as they are.
	Unopenable int `json:"unopenable"`
}

// sealedTerm is the key term a sealed blob names (false: not sealed).
func sealedTerm(b []byte) (uint32, bool) {
	if len(b) < 5 || b[0] != sealVersion {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[1:5]), true
}

func (it *ResealItem) sealID() string {
	if it.Kind == "" {
		return it.ID
	}
	return loginSealID(it.Kind, it.ID)
}

func checkReseal(items []ResealItem) error {
	if len(items) == 0 || len(items) > MaxResealItems {
		return fmt.Errorf("%w: reseal-tokens needs 1-%d items", ErrBadCommand, MaxResealItems)
	}
	for i := range items {
		it := &items[i]
		if it.ID == "" || len(it.New) == 0 || len(it.New) > MaxLoginSealedData || len(it.Old) > MaxLoginSealedData {
			return fmt.Errorf("%w: reseal-tokens item %d needs an id and at most %d bytes of ciphertext", ErrBadCommand, i, MaxLoginSealedData)
		}
		if it.Kind != "" {
			if err := checkLoginName("kind", it.Kind, MaxLoginKind); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyReseal is the deterministic apply: checked completely first, then
// compare-and-replace per item.
func (s *state) applyReseal(cmd *Command) (int, error) {
	if err := checkReseal(cmd.Reseal); err != nil {
		return 0, err
	}
	n := 0
	for i := range cmd.Reseal {
		it := &cmd.Reseal[i]
		if it.Kind == "" {
			if c, ok := s.clients[it.ID]; ok && bytes.Equal(c.SealedToken, it.Old) {
				nc := *c
				nc.SealedToken = bytes.Clone(it.New)
				s.putClient(&nc) // keeps the sorted index equal to the map
				n++
			}
			continue
		}
		k := loginIndexKey(it.Kind, it.ID)
		if r, ok := s.logins[k]; ok && bytes.Equal(r.SealedData, it.Old) {
			nr := *r
			nr.SealedData = bytes.Clone(it.New)
			s.logins[k] = &nr
			n++
		}
	}
	return n, nil
}

// resealCandidates lists, in a stable order, every stored blob sealed
// under a term other than primary.
func (s *state) resealCandidates(primary uint32) []ResealItem {
	var out []ResealItem
	for id := range s.ids.keys() {
		if t, ok := sealedTerm(s.clients[id].SealedToken); ok && t != primary {
			out = append(out, ResealItem{ID: id, Old: s.clients[id].SealedToken})
		}
	}
	var logins []ResealItem
	for _, r := range s.logins {
		if t, ok := sealedTerm(r.SealedData); ok && t != primary {
			logins = append(logins, ResealItem{Kind: r.Kind, ID: r.Key, Old: r.SealedData})
		}
	}
	sort.Slice(logins, func(i, j int) bool {
		return logins[i].Kind < logins[j].Kind || logins[i].Kind == logins[j].Kind && logins[i].ID < logins[j].ID
	})
	return append(out, logins...)
}

// SealedTermCounts counts the stored client tokens and login data by the
// key term that sealed them.
func (s *Store) SealedTermCounts() (tokens, loginData map[uint32]int) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	tokens, loginData = map[uint32]int{}, map[uint32]int{}
	for _, c := range s.fsm.st.clients {
		if t, ok := sealedTerm(c.SealedToken); ok {
			tokens[t]++
		}
	}
	for _, r := range s.fsm.st.logins {
		if t, ok := sealedTerm(r.SealedData); ok {
			loginData[t]++
		}
	}
	return tokens, loginData
}

// ResealTokens (leader) seals again, under this node's primary term, every
// stored client token and login record's data sealed under another term,
// in entries of at most MaxResealItems items. It reports what it replaced
// and how many blobs each term still seals. Blobs changed meanwhile (a
// reset) are left to the change; running it again is harmless.
func (s *Store) ResealTokens(ctx context.Context) (ResealReport, error) {
	if s.cfg.Keyring == nil {
		return ResealReport{}, ErrNoKeyring
	}
	if !s.IsLeader() {
		return ResealReport{}, ErrNotLeader
	}
	// A leader just elected (or restarted) may not have applied the whole
	// log yet: the scan below must see every stored blob.
	if err := s.LinearizableRead(ctx); err != nil {
		return ResealReport{}, err
	}
	k := s.cfg.Keyring
	rep := ResealReport{Primary: k.PrimaryTerm()}
	s.fsm.mu.RLock()
	todo := s.fsm.st.resealCandidates(rep.Primary)
	s.fsm.mu.RUnlock()
	for len(todo) > 0 {
		batch, rest, err := s.resealBatch(k, todo, &rep)
		if err != nil {
			return rep, err
		}
		todo = rest
		if len(batch) == 0 {
			continue
		}
		res, err := s.Apply(ctx, Command{Op: OpResealTokens, Reseal: batch})
		if err != nil {
			return rep, err
		}
		rep.Entries++
		s.countResealed(batch, res.Count, &rep)
	}
	rep.TokensByTerm, rep.LoginDataByTerm = s.SealedTermCounts()
	return rep, nil
}

// resealBatch seals the next items of todo, up to the entry bounds.
func (s *Store) resealBatch(k *Keyring, todo []ResealItem, rep *ResealReport) (batch, rest []ResealItem, err error) {
	size := 0
	for len(todo) > 0 && len(batch) < MaxResealItems && (len(batch) == 0 || size < MaxResealBytes) {
		it := todo[0]
		todo = todo[1:]
		plain, err := k.Open(it.sealID(), it.Old)
		if err != nil { // a term this keyring lacks, or not its key
			rep.Unopenable++
			continue
		}
		if it.New, err = k.Seal(it.sealID(), plain); err != nil {
			return nil, nil, err
		}
		size += len(it.Old) + len(it.New)
		batch = append(batch, it)
	}
	return batch, todo, nil
}

// countResealed splits an entry's replaced count between tokens and login
// data: the apply reports a total, so the split is recomputed from the
// leader's state (a blob now equal to New was replaced by this entry).
func (s *Store) countResealed(batch []ResealItem, total int, rep *ResealReport) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	tokens := 0
	for i := range batch {
		if it := &batch[i]; it.Kind == "" {
			if c, ok := s.fsm.st.clients[it.ID]; ok && bytes.Equal(c.SealedToken, it.New) {
				tokens++
			}
		}
	}
	tokens = min(tokens, total)
	rep.ResealedTokens += tokens
	rep.ResealedLoginData += total - tokens
}
