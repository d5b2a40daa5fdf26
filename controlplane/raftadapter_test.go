package controlplane

import (
	"testing"

	"github.com/tcauth/tcauth/raftstore"
)

func newRaftTestStore(t *testing.T) Store {
	c := raftstore.NewTestCluster(t, 1)
	return NewRaftStore(c.WaitLeader())
}

func TestRaftStoreContract(t *testing.T) { testStoreContract(t, newRaftTestStore(t)) }
