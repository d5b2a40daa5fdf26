package raftstore

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func singleNode(t *testing.T) (*Store, Config) {
	t.Helper()
	return singleNodeWith(t, func(*Config) {})
}

func singleNodeWith(t *testing.T, set func(*Config)) (*Store, Config) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.AllowInsecure, cfg.Bootstrap, cfg.Keyring = "solo", t.TempDir(), true, true, TestKeyring(t)
	FastTimeouts(&cfg)
	set(&cfg)
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	waitLeader(t, s)
	cfg.RaftBind = s.RaftAddr()
	return s, cfg
}

func waitLeader(t *testing.T, s *Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !s.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("no leadership within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustApply(t testing.TB, s *Store, cmd Command) ApplyResult {
	t.Helper()
	res, err := s.Apply(context.Background(), cmd)
	if err != nil {
		t.Fatalf("apply %s: %v", cmd.Op, err)
	}
	return res
}

func createClient(t testing.TB, s *Store, id, token string, scopes ...string) {
	t.Helper()
	sealed, err := s.SealToken(id, token)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, Command{Op: OpCreateClient, Time: t0, Actor: "root", Client: &Client{
		ClientID: id, Scopes: scopes, Expires: t0.Add(time.Hour), Created: t0, LastModified: t0,
		LastDateUsed: t0, LastRotated: t0, SealedToken: sealed}})
}

func TestConfigRequiresTLSOrInsecure(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeID, cfg.DataDir = "x", t.TempDir()
	if _, err := Open(cfg); !errors.Is(err, errNoTLS) {
		t.Fatalf("got %v, want errNoTLS", err)
	}
	cfg.DataDir = ""
	if _, err := Open(cfg); err == nil {
		t.Fatal("missing DataDir accepted")
	}
}

func TestSingleNodeWritesAndReads(t *testing.T) {
	s, _ := singleNode(t)
	ctx := context.Background()
	createClient(t, s, "a/one", "token-one-0123456789abcdef", "queue:*")
	createClient(t, s, "a/two", "token-two-0123456789abcdef")
	createClient(t, s, "b/three", "token-three-0123456789abcd")

	if _, err := s.Apply(ctx, Command{Op: OpCreateClient, Time: t0, Client: &Client{ClientID: "a/one"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate create: %v", err)
	}
	tok, ok, err := s.AccessToken("a/one")
	if err != nil || !ok || tok != "token-one-0123456789abcdef" {
		t.Fatalf("AccessToken = %q %v %v", tok, ok, err)
	}
	got, more := s.ListClients("a/", 0, 1)
	if len(got) != 1 || got[0].ClientID != "a/one" || !more {
		t.Fatalf("ListClients page 1 = %v more=%v", got, more)
	}
	got, more = s.ListClients("a/", 1, 10)
	if len(got) != 1 || got[0].ClientID != "a/two" || more {
		t.Fatalf("ListClients page 2 = %v more=%v", got, more)
	}
	if got, _ := s.ListClients("", 0, -1); len(got) != 3 {
		t.Fatalf("all clients = %d", len(got))
	}

	res := mustApply(t, s, Command{Op: OpSetClientDisabled, ID: "a/two", Disabled: true, Time: t0.Add(time.Minute), Actor: "root"})
	if !res.Client.Disabled || !res.Client.LastModified.Equal(t0.Add(time.Minute)) {
		t.Fatalf("disable: %+v", res.Client)
	}
	if _, err := s.Apply(ctx, Command{Op: OpUpdateClient, ID: "nope", Client: &Client{}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
	mustApply(t, s, Command{Op: OpDeleteClient, ID: "b/three", Actor: "root", Time: t0})
	if _, ok := s.Client("b/three"); ok {
		t.Fatal("deleted client still there")
	}

	// Roles go through the resolver, incrementally, and are re-validated.
	mustApply(t, s, Command{Op: OpCreateRole, Time: t0, Role: &Role{RoleID: "a", Scopes: []string{"assume:b"}}})
	mustApply(t, s, Command{Op: OpCreateRole, Time: t0, Role: &Role{RoleID: "b", Scopes: []string{"B"}}})
	if exp := s.Resolver().Expand([]string{"assume:a"}); strings.Join(exp, ",") != "B,assume:a,assume:b" {
		t.Fatalf("expansion = %v", exp)
	}
	_, err = s.Apply(ctx, Command{Op: OpUpdateRole, Time: t0, Role: &Role{RoleID: "b", Scopes: []string{"assume:a"}}})
	if !errors.Is(err, ErrInvalidRoles) || !strings.Contains(err.Error(), "cycles") {
		t.Fatalf("cycle accepted: %v", err)
	}
	if r, _ := s.Role("b"); r.Scopes[0] != "B" {
		t.Fatalf("rejected update changed the role: %v", r)
	}
	mustApply(t, s, Command{Op: OpDeleteRole, ID: "b", Time: t0})
	if len(s.Roles()) != 1 {
		t.Fatalf("roles = %v", s.Roles())
	}

	hist, _ := s.Audit(AuditQuery{EntityType: "client", EntityID: "a/two"}, 0, -1)
	if len(hist) != 2 || hist[0].ActionType != "created" || hist[1].ActionType != "client disabled" {
		t.Fatalf("audit = %+v", hist)
	}
	if byActor, _ := s.Audit(AuditQuery{Actor: "root"}, 0, 2); len(byActor) != 2 {
		t.Fatalf("audit by actor = %+v", byActor)
	}
	if err := s.LinearizableRead(ctx); err != nil {
		t.Fatalf("linearizable read on leader: %v", err)
	}
}

func TestBatchCommands(t *testing.T) {
	s, _ := singleNode(t)
	createClient(t, s, "x", "tok-x-0123456789abcdefghij")
	createClient(t, s, "y", "tok-y-0123456789abcdefghij")
	sealed, _ := s.SealToken("gone", "tok-g-0123456789abcdefghij")
	mustApply(t, s, Command{Op: OpCreateClient, Time: t0, Client: &Client{ClientID: "gone", Expires: t0.Add(-time.Hour), DeleteOnExpiration: true, SealedToken: sealed}})

	res := mustApply(t, s, Command{Op: OpTouchClients, LastUsed: map[string]time.Time{"x": t0.Add(time.Hour), "y": t0.Add(-time.Hour), "nope": t0}})
	if res.Count != 1 {
		t.Fatalf("touched %d, want 1 (only newer dates count)", res.Count)
	}
	if c, _ := s.Client("x"); !c.LastDateUsed.Equal(t0.Add(time.Hour)) {
		t.Fatalf("lastDateUsed = %v", c.LastDateUsed)
	}
	res = mustApply(t, s, Command{Op: OpDeleteExpiredClients, Time: t0, Actor: "static/taskcluster/auth"})
	if res.Count != 1 {
		t.Fatalf("expired %d", res.Count)
	}
	if _, ok := s.Client("gone"); ok {
		t.Fatal("expired client kept")
	}
	res = mustApply(t, s, Command{Op: OpPurgeAudit, Before: t0.Add(time.Second)})
	if res.Count == 0 {
		t.Fatal("nothing purged")
	}
	n, err := s.SyncStaticClients(context.Background(), t0, []StaticClientSpec{{ClientID: "static/root", AccessToken: "root-token-0123456789abcdef", Scopes: []string{"*"}}})
	if err != nil || n != 1 {
		t.Fatalf("sync static: %d %v", n, err)
	}
	// The same configuration again changes nothing: no new log entry.
	before := s.AppliedIndex()
	if n, err := s.SyncStaticClients(context.Background(), t0, []StaticClientSpec{{ClientID: "static/root", AccessToken: "root-token-0123456789abcdef", Scopes: []string{"*"}}}); err != nil || n != 0 || s.AppliedIndex() != before {
		t.Fatalf("idempotent sync: %d %v index %d->%d", n, err, before, s.AppliedIndex())
	}
	if n, _ := s.SyncStaticClients(context.Background(), t0, nil); n != 1 {
		t.Fatalf("removing static clients touched %d", n)
	}
}

func TestGarbageCommandsDoNotPanic(t *testing.T) {
	s, _ := singleNode(t)
	ctx := context.Background()
	for _, cmd := range []Command{
		{Op: "bogus"},
		{Op: OpCreateClient},
		{Op: OpUpdateClient, ID: "x"},
		{Op: OpCreateRole},
		{Op: OpCreateRole, Role: &Role{RoleID: "r", Scopes: []string{"tab\there"}}},
		{Op: OpResetAccessToken, ID: "x"},
		{Op: OpSetNodeMeta},
	} {
		if _, err := s.Apply(ctx, cmd); err == nil {
			t.Errorf("%+v accepted", cmd)
		}
	}
	// Raw garbage bytes straight into the log.
	for _, raw := range [][]byte{nil, []byte("{"), []byte(`{"op":"create-client","client":{"clientId":7}}`), {0xff, 0}} {
		f := s.raft.Apply(raw, time.Second)
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
		if r := f.Response().(*applyResponse); !errors.Is(r.err, ErrBadCommand) {
			t.Errorf("%q: %v", raw, r.err)
		}
	}
	createClient(t, s, "still-works", "tok-0123456789abcdefghijkl")
}

func TestRestartKeepsCommittedState(t *testing.T) {
	s, cfg := singleNode(t)
	for i := 0; i < 50; i++ {
		createClient(t, s, "c"+string(rune('A'+i%26))+string(rune('a'+i/26)), "tok-0123456789abcdefghijkl")
	}
	mustApply(t, s, Command{Op: OpCreateRole, Time: t0, Role: &Role{RoleID: "r", Scopes: []string{"R"}}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	waitLeader(t, s2)
	if err := s2.LinearizableRead(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := s2.ClientCount(); n != 50 {
		t.Fatalf("%d clients after restart", n)
	}
	if exp := s2.Resolver().Expand([]string{"assume:r"}); len(exp) != 2 {
		t.Fatalf("resolver not rebuilt: %v", exp)
	}
}

func TestNoPlaintextTokenOnDisk(t *testing.T) {
	s, cfg := singleNode(t)
	const secret = "PLAINTEXT-SECRET-5f1e2d3c4b5a69788796a5b4"
	createClient(t, s, "secret-holder", secret)
	mustApply(t, s, Command{Op: OpResetAccessToken, ID: "secret-holder", SealedToken: mustSeal(t, s, "secret-holder", secret+"2"), Time: t0})
	var buf bytes.Buffer
	if err := s.SaveSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if bytes.Contains(buf.Bytes(), []byte(secret)) {
		t.Fatal("plaintext token in backup")
	}
	err := filepath.WalkDir(cfg.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("plaintext token in %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mustSeal(t *testing.T, s *Store, id, tok string) []byte {
	b, err := s.SealToken(id, tok)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSnapshotBackupRestore(t *testing.T) {
	s, _ := singleNode(t)
	createClient(t, s, "keep", "tok-keep-0123456789abcdefgh")
	mustApply(t, s, Command{Op: OpCreateRole, Time: t0, Role: &Role{RoleID: "r*", Scopes: []string{"x:<..>"}}})
	var backup bytes.Buffer
	if err := s.SaveSnapshot(&backup); err != nil {
		t.Fatal(err)
	}
	createClient(t, s, "later", "tok-late-0123456789abcdefgh")
	mustApply(t, s, Command{Op: OpDeleteClient, ID: "keep", Time: t0})

	if err := s.RestoreSnapshot(bytes.NewReader([]byte("not a snapshot"))); err == nil {
		t.Fatal("garbage restored")
	}
	truncated := backup.Bytes()[:backup.Len()/2]
	if err := s.RestoreSnapshot(bytes.NewReader(truncated)); err == nil {
		t.Fatal("truncated snapshot restored")
	}
	after := s.AppliedIndex()
	if err := s.RestoreSnapshot(bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Client("keep"); !ok {
		t.Fatal("restored state lacks keep")
	}
	if _, ok := s.Client("later"); ok {
		t.Fatal("restored state still has later")
	}
	if exp := s.Resolver().Expand([]string{"assume:rz"}); strings.Join(exp, ",") != "assume:rz,x:z" {
		t.Fatalf("resolver after restore: %v", exp)
	}
	if _, _, err := s.Changes(context.Background(), after); !errors.Is(err, ErrFeedTruncated) {
		t.Fatalf("feed after restore: %v", err)
	}
	// Writes continue after a restore.
	createClient(t, s, "after-restore", "tok-aftr-0123456789abcdefgh")
}

func TestChangeFeed(t *testing.T) {
	s, _ := singleNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := s.AppliedIndex()
	done := make(chan []Change)
	go func() {
		ch, _, err := s.Changes(ctx, start)
		if err != nil {
			t.Error(err)
		}
		done <- ch
	}()
	time.Sleep(50 * time.Millisecond)
	createClient(t, s, "fed", "tok-fed-0123456789abcdefghi")
	got := <-done
	if len(got) != 1 || got[0].ID != "fed" || got[0].Op != "created" || got[0].Index <= start {
		t.Fatalf("changes = %+v", got)
	}
	// A long poll with nothing new ends with the context and no error.
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	ch, idx, err := s.Changes(short, s.AppliedIndex())
	if err != nil || len(ch) != 0 || idx != s.AppliedIndex() {
		t.Fatalf("idle poll: %v %d %v", ch, idx, err)
	}
}

func TestChangeFeedRing(t *testing.T) {
	f := newChangeFeed(3)
	for i := uint64(1); i <= 5; i++ {
		f.add([]Change{{Index: i, ID: "c"}})
	}
	if _, err := f.since(1); !errors.Is(err, ErrFeedTruncated) {
		t.Fatalf("since(1) = %v", err)
	}
	got, err := f.since(2)
	if err != nil || len(got) != 3 || got[0].Index != 3 || got[2].Index != 5 {
		t.Fatalf("since(2) = %v %v", got, err)
	}
	if got, _ := f.since(5); len(got) != 0 {
		t.Fatalf("since(5) = %v", got)
	}
}

// neverAnswered is a raft future nobody answers: what hashicorp/raft
// leaves behind for a command still in its buffered apply channel when it
// shuts down.
type neverAnswered struct{ raft.Future }

func (neverAnswered) Error() error { select {} }

// TestAwaitFutureEndsAtClose: waiting on a future that raft never answers
// ends when the store closes, with raft.ErrRaftShutdown, instead of
// blocking its caller (and Close, through the catch-up monitor) forever.
func TestAwaitFutureEndsAtClose(t *testing.T) {
	s, _ := singleNode(t)
	got := make(chan error, 1)
	go func() { got <- s.awaitFuture(neverAnswered{}) }()
	select {
	case err := <-got:
		t.Fatalf("returned before Close: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if !errors.Is(err, raft.ErrRaftShutdown) {
			t.Fatalf("err %v, want raft.ErrRaftShutdown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting 5 s after Close")
	}
}
