package controlplane

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/raftstore"
)

// TestReadIndex: the leader answers its applied index once it is caught
// up, and 503 before; a follower fetches it from the leader's published
// address, and without one says so with raftstore.ErrNoReadIndexSource
// (the store then falls back to the commit index it noted).
func TestReadIndex(t *testing.T) {
	lag := newLaggingStore(newTestStore(t))
	leader := newEnvWithStore(t, lag)
	expectError(t, leader.api("GET", readIndexPath), 503, "InternalServerError")
	lag.setCaughtUp()
	r := leader.api("GET", readIndexPath)
	expectStatus(t, r, 200)
	if !strings.Contains(string(r.body), `"readIndex"`) {
		t.Fatalf("body %s", r.body)
	}

	mem := newMemEnv(t)
	fsrv, _ := newFollower(t, mem)
	fsrv.readIndexClient = &http.Client{Timeout: 5 * time.Second}
	idx, err := fsrv.fetchReadIndex(context.Background())
	if err != nil || idx != mem.store.AppliedIndex() {
		t.Fatalf("fetched %d, %v; leader's applied index %d", idx, err, mem.store.AppliedIndex())
	}
	if _, err := mem.srv.fetchReadIndex(context.Background()); !errors.Is(err, raftstore.ErrNoReadIndexSource) {
		t.Fatalf("the leader asking itself: %v", err)
	}
}
