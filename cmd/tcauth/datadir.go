package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tcauth/tcauth/raftstore"
)

// nodeKeyring loads the node's token keyring. A new one is generated only
// when bootstrapping a data directory that holds no state: next to existing
// state a new keyring would start a node on which every stored client
// fails with "message authentication failed", and a joining node with its
// own keyring could not open the tokens the leader replicates to it.
// raftstore.Open then checks that the keyring opens the stored tokens.
func nodeKeyring(o nodeOptions) (*raftstore.Keyring, error) {
	k, path, err := existingKeyring(o)
	if k != nil || err != nil {
		return k, err
	}
	k, err = raftstore.GenerateKeyringFile(path)
	if err == nil {
		o.Logger.Info("generated a new token keyring; every node of the cluster needs a copy", "path", path)
	}
	return k, err
}

// existingKeyring is nodeKeyring without the generation, which
// --check-config uses too: the keyring file's contents, or (nil, path,
// nil) when a new one would be generated at path, or why the node cannot
// start. It writes nothing.
func existingKeyring(o nodeOptions) (*raftstore.Keyring, string, error) {
	path := o.KeyringPath
	if path == "" {
		path = filepath.Join(o.DataDir, "keyring.json")
	}
	k, err := raftstore.LoadKeyringFile(path)
	if !errors.Is(err, os.ErrNotExist) {
		return k, path, err
	}
	raftDir := filepath.Join(o.DataDir, "raft")
	has, err := raftstore.HasState(raftDir)
	if err != nil {
		return nil, path, err
	}
	if has {
		return nil, path, fmt.Errorf("%s: the token keyring is missing, but %s holds this node's state, whose access tokens were sealed with it; "+
			"nothing was changed (a new keyring would open none of them). Copy the cluster's keyring there from another node or from your backup of it, or pass --keyring FILE", path, raftDir)
	}
	if !o.Bootstrap {
		return nil, path, fmt.Errorf("%s: no token keyring; a node that joins a cluster needs a copy of the cluster's keyring "+
			"(made by the node that bootstrapped it): copy it there or pass --keyring FILE", path)
	}
	return nil, path, nil
}
