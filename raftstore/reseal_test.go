package raftstore

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// withTerm is k plus a new random key of term t, primary if primary.
func withTerm(t *testing.T, k *Keyring, term uint32, primary bool) *Keyring {
	t.Helper()
	n := &Keyring{primary: k.primary, aeads: map[uint32]cipher.AEAD{}, fingerprints: map[uint32]string{}}
	for tm, a := range k.aeads {
		n.aeads[tm], n.fingerprints[tm] = a, k.fingerprints[tm]
	}
	key := make([]byte, 32)
	rand.Read(key)
	one, err := NewKeyring(term, map[uint32][]byte{term: key})
	if err != nil {
		t.Fatal(err)
	}
	n.aeads[term], n.fingerprints[term] = one.aeads[term], one.fingerprints[term]
	if primary {
		n.primary = term
	}
	return n
}

// without is k less term (which must not be its primary).
func without(k *Keyring, term uint32) *Keyring {
	n := &Keyring{primary: k.primary, aeads: map[uint32]cipher.AEAD{}, fingerprints: map[uint32]string{}}
	for tm, a := range k.aeads {
		if tm != term {
			n.aeads[tm], n.fingerprints[tm] = a, k.fingerprints[tm]
		}
	}
	return n
}

// TestApplyReseal: the apply replaces a blob only if it is still exactly
// the old ciphertext (a concurrent reset wins), and a bad command is
// refused whole, changing nothing.
func TestApplyReseal(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fresh := func() *state {
		st := newState()
		st.putClient(&Client{ClientID: "a", SealedToken: []byte("old-a"), LastModified: t0})
		st.putClient(&Client{ClientID: "b", SealedToken: []byte("reset-b")})
		st.putLogin(&LoginRecord{Kind: "session", Key: "k1", Identity: "gh/1", SealedData: []byte("old-s")})
		return st
	}
	item := func(kind, id, old, new string) ResealItem {
		return ResealItem{Kind: kind, ID: id, Old: []byte(old), New: []byte(new)}
	}
	many := make([]ResealItem, MaxResealItems+1)
	for i := range many {
		many[i] = item("", "a", "old-a", "new")
	}
	cases := []struct {
		name      string
		items     []ResealItem
		wantErr   error
		wantCount int
		wantA     string // client a's token afterwards
		wantB     string
		wantS     string // the session's data
	}{
		{"client replaced", []ResealItem{item("", "a", "old-a", "new-a")}, nil, 1, "new-a", "reset-b", "old-s"},
		{"reset meanwhile wins", []ResealItem{item("", "b", "old-b", "new-b")}, nil, 0, "old-a", "reset-b", "old-s"},
		{"client gone", []ResealItem{item("", "zz", "old", "new")}, nil, 0, "old-a", "reset-b", "old-s"},
		{"login data replaced", []ResealItem{item("session", "k1", "old-s", "new-s")}, nil, 1, "old-a", "reset-b", "new-s"},
		{"login data changed meanwhile", []ResealItem{item("session", "k1", "other", "new-s")}, nil, 0, "old-a", "reset-b", "old-s"},
		{"a client id is not a login key", []ResealItem{item("", "k1", "old-s", "new-s")}, nil, 0, "old-a", "reset-b", "old-s"},
		{"mixed batch", []ResealItem{item("", "a", "old-a", "new-a"), item("", "b", "old-b", "x"), item("session", "k1", "old-s", "new-s")}, nil, 2, "new-a", "reset-b", "new-s"},
		{"repeated entry", []ResealItem{item("", "a", "old-a", "new-a"), item("", "a", "old-a", "new-2")}, nil, 1, "new-a", "reset-b", "old-s"},
		{"empty", nil, ErrBadCommand, 0, "old-a", "reset-b", "old-s"},
		{"too many", many, ErrBadCommand, 0, "old-a", "reset-b", "old-s"},
		{"no new ciphertext, after a good item", []ResealItem{item("", "a", "old-a", "new-a"), item("", "b", "reset-b", "")}, ErrBadCommand, 0, "old-a", "reset-b", "old-s"},
		{"no id", []ResealItem{item("", "", "old-a", "new-a")}, ErrBadCommand, 0, "old-a", "reset-b", "old-s"},
		{"NUL in kind", []ResealItem{item("sess\x00ion", "k1", "old-s", "new-s")}, ErrBadCommand, 0, "old-a", "reset-b", "old-s"},
		{"oversized", []ResealItem{item("", "a", "old-a", strings.Repeat("x", MaxLoginSealedData+1))}, ErrBadCommand, 0, "old-a", "reset-b", "old-s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := fresh()
			res, changes, err := st.apply(&Command{Op: OpResealTokens, Reseal: tc.items})
			if !errors.Is(err, tc.wantErr) || res.Count != tc.wantCount || len(changes) != 0 {
				t.Fatalf("count %d changes %v err %v, want %d, none, %v", res.Count, changes, err, tc.wantCount, tc.wantErr)
			}
			got := []string{string(st.clients["a"].SealedToken), string(st.clients["b"].SealedToken), string(st.logins[loginIndexKey("session", "k1")].SealedData)}
			if want := []string{tc.wantA, tc.wantB, tc.wantS}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after: %q, want %q", got, want)
			}
			if !st.clients["a"].LastModified.Equal(t0) || len(st.audit) != 0 {
				t.Fatal("re-sealing changed lastModified or was audited")
			}
			if len(st.loginsByIdentity[loginIndexKey("session", "gh/1")]) != 1 {
				t.Fatal("the identity index lost the session")
			}
		})
	}
}

// TestResealTokens: a node holding tokens and login data sealed under
// term 1 gets a keyring whose primary is term 2; ResealTokens re-seals
// everything (in several entries), after which a keyring without term 1
// opens every token and the data directory check passes, while the old
// keyring alone (no term 2) is refused with a message naming the term.
func TestResealTokens(t *testing.T) {
	c := NewTestCluster(t, 1)
	ctx := context.Background()
	s := c.Nodes[0]
	const n = MaxResealItems + 20 // more than one entry
	tokens := map[string]string{}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("c-%03d", i)
		tokens[id] = "token-" + id
		sealed, err := s.SealToken(id, tokens[id])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Apply(ctx, Command{Op: OpCreateClient, Client: &Client{ClientID: id, SealedToken: sealed}}); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := s.SealLoginData("grant", "g1", []byte("refresh-token"))
	if _, err := s.Apply(ctx, Command{Op: OpLoginPut, Login: &LoginRecord{Kind: "grant", Key: "g1", Identity: "gh/1",
		Expires: time.Now().Add(time.Hour), SealedData: data}}); err != nil {
		t.Fatal(err)
	}
	k1 := c.Keyring
	k12 := withTerm(t, k1, 2, true)
	c.Stop(0)
	c.Configs[0].Keyring = k12
	s = c.Restart(0)
	// At once on election: a leader just elected may not have applied
	// its whole log yet, and the re-seal must still see every token.
	for deadline := time.Now().Add(10 * time.Second); !s.IsLeader() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}

	rep, err := s.ResealTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Primary != 2 || rep.ResealedTokens != n || rep.ResealedLoginData != 1 || rep.Entries < 2 || rep.Unopenable != 0 {
		t.Fatalf("report %+v, want primary 2, %d tokens, 1 login, ≥2 entries", rep, n)
	}
	if rep.TokensByTerm[1] != 0 || rep.TokensByTerm[2] != n || rep.LoginDataByTerm[1] != 0 || rep.LoginDataByTerm[2] != 1 {
		t.Fatalf("after: %+v", rep)
	}
	// Again: nothing left to do.
	if again, err := s.ResealTokens(ctx); err != nil || again.Entries != 0 || again.ResealedTokens != 0 {
		t.Fatalf("second run: %+v %v", again, err)
	}
	k2 := without(k12, 1)
	for id, want := range tokens {
		c, _ := s.Client(id)
		if got, err := k2.Open(id, c.SealedToken); err != nil || string(got) != want {
			t.Fatalf("%s: %q %v", id, got, err)
		}
	}
	rec, _ := s.LoginRecord("grant", "g1")
	if got, err := k2.Open(loginSealID("grant", "g1"), rec.SealedData); err != nil || string(got) != "refresh-token" {
		t.Fatalf("login data: %q %v", got, err)
	}

	// Term 1 removed: the node starts. The old keyring alone (which
	// lacks term 2) is refused, naming the term.
	c.Stop(0)
	c.Configs[0].Keyring = k1
	if _, err := Open(c.Configs[0]); !errors.Is(err, ErrKeyringMismatch) || !strings.Contains(err.Error(), "no key of term 2") {
		t.Fatalf("opened with a keyring lacking term 2: %v", err)
	}
	c.Configs[0].Keyring = k2
	c.Restart(0)
}

// TestResealTokensNotLeader: only the leader re-seals.
func TestResealTokensNotLeader(t *testing.T) {
	c := NewTestCluster(t, 2)
	for _, s := range c.Nodes {
		if !s.IsLeader() {
			if _, err := s.ResealTokens(context.Background()); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("follower: %v", err)
			}
			return
		}
	}
	t.Fatal("no follower")
}

// TestStartRefusesLoginDataUnderMissingTerm: the start-up check covers
// login records' data too, not only client tokens.
func TestStartRefusesLoginDataUnderMissingTerm(t *testing.T) {
	c := NewTestCluster(t, 1)
	k1 := c.Keyring
	c.Stop(0)
	c.Configs[0].Keyring = withTerm(t, k1, 2, true)
	s := c.Restart(0)
	c.WaitLeader()
	data, _ := s.SealLoginData("grant", "g1", []byte("refresh-token"))
	if _, err := s.Apply(context.Background(), Command{Op: OpLoginPut, Login: &LoginRecord{Kind: "grant", Key: "g1",
		Expires: time.Now().Add(time.Hour), SealedData: data}}); err != nil {
		t.Fatal(err)
	}
	c.Stop(0)
	c.Configs[0].Keyring = k1
	_, err := Open(c.Configs[0])
	if !errors.Is(err, ErrKeyringMismatch) || !strings.Contains(err.Error(), "no key of term 2") || !strings.Contains(err.Error(), "login record (grant)") {
		t.Fatalf("opened with a keyring lacking the term of stored login data: %v", err)
	}
}
