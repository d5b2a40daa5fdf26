package raftstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/hashicorp/raft"
)

// Recovery of a cluster that lost quorum (hashicorp/raft's
// RecoverCluster, the "peers.json" procedure of Consul's outage recovery
// guide), as an offline step on a stopped node: the node's log, stable
// store and snapshots are replayed into its state machine, a snapshot of
// that state is written with the new configuration, and the log is
// compacted away, so the node starts with the configuration the operator
// gave and elects a leader among those servers. Everything in this node's
// log is kept — every write it acknowledged, and possibly entries that
// never committed (raft cannot tell them apart offline).

var (
	// ErrBadPeersFile: the peers file is not a usable configuration.
	ErrBadPeersFile = errors.New("raftstore: unusable peers file")
	// ErrNothingToRecover: the data directory holds no Raft state.
	ErrNothingToRecover = errors.New("raftstore: no Raft state to recover")
)

// PeerSpec is one server of a recovery configuration. The JSON form is
// hashicorp/raft's peers.json (ReadConfigJSON): id, address, non_voter.
type PeerSpec struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	NonVoter bool   `json:"non_voter,omitempty"`
}

// Limits of a peers file: a cluster is a handful of servers.
const (
	maxPeersFileBytes = 64 << 10
	maxPeers          = 64
)

var peerIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ParsePeers reads a peers file: a JSON array of PeerSpec, nothing else
// (unknown keys and trailing data are refused: a misspelt "non_voter"
// would otherwise silently make a voter). Ids are node ids, addresses
// host:port; ids and addresses are unique and at least one server votes.
func ParsePeers(data []byte) ([]PeerSpec, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadPeersFile, fmt.Sprintf(format, args...))
	}
	if len(data) > maxPeersFileBytes {
		return nil, bad("larger than %d bytes", maxPeersFileBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var peers []PeerSpec
	if err := dec.Decode(&peers); err != nil {
		return nil, bad("not a JSON list of {\"id\", \"address\", \"non_voter\"} (%v)", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("data after the list")
	}
	if len(peers) == 0 || len(peers) > maxPeers {
		return nil, bad("%d servers; a configuration has 1 to %d", len(peers), maxPeers)
	}
	ids, addrs, voters := map[string]bool{}, map[string]bool{}, 0
	for i, p := range peers {
		if !peerIDPattern.MatchString(p.ID) {
			return nil, bad("server %d: id %q is not a node id (1-64 of A-Z a-z 0-9 . _ -)", i+1, p.ID)
		}
		host, port, err := net.SplitHostPort(p.Address)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return nil, bad("server %s: address %q is not host:port", p.ID, p.Address)
		}
		if ids[p.ID] || addrs[p.Address] {
			return nil, bad("server %s: id or address %s listed twice", p.ID, p.Address)
		}
		ids[p.ID], addrs[p.Address] = true, true
		if !p.NonVoter {
			voters++
		}
	}
	if voters == 0 {
		return nil, bad("no voter: such a cluster can never elect a leader")
	}
	return peers, nil
}

// RecoverConfig is what Recover needs.
type RecoverConfig struct {
	DataDir string     // the node's Raft data directory (Config.DataDir)
	NodeID  string     // optional: must match the id the directory records
	Peers   []PeerSpec // the new configuration (ParsePeers)
	// DryRun checks everything and reports the state, changing nothing.
	DryRun bool
	Logger *slog.Logger // default slog.Default()
}

// RecoverResult reports the recovered (or, dry run, recoverable) state.
type RecoverResult struct {
	NodeID    string     `json:"nodeId"`
	LastIndex uint64     `json:"lastIndex"` // the newest entry kept
	LastTerm  uint64     `json:"lastTerm"`
	Clients   int        `json:"clients"`
	Roles     int        `json:"roles"`
	Servers   []PeerSpec `json:"servers"`
	DryRun    bool       `json:"dryRun,omitempty"`
}

// Recover replaces the Raft configuration of a stopped node's data
// directory with rc.Peers, keeping its state. It takes the directory's
// lock (ErrDataDirLocked while the node runs), runs the same checks as a
// start, and refuses a directory without state (ErrNothingToRecover) and
// a configuration in which this node does not vote (ErrBadPeersFile).
func Recover(rc RecoverConfig) (RecoverResult, error) {
	if has, err := HasState(rc.DataDir); err != nil || !has {
		if err == nil {
			err = &DataDirError{Path: rc.DataDir, Problem: "no Raft state (a log, snapshots or node-id) to recover",
				Remedy: "point --data-dir at the surviving node's data directory", Err: ErrNothingToRecover}
		}
		return RecoverResult{}, err
	}
	recorded, err := readNodeID(rc.DataDir)
	if err != nil {
		return RecoverResult{}, err
	}
	cfg := DefaultConfig()
	cfg.DataDir, cfg.NodeID, cfg.AllowInsecure, cfg.Logger = rc.DataDir, rc.NodeID, true, rc.Logger
	if cfg.NodeID == "" {
		cfg.NodeID = recorded
	}
	if err := cfg.fill(); err != nil {
		return RecoverResult{}, fmt.Errorf("%w (the directory records no node id: give it)", err)
	}
	self, err := selfIn(rc.Peers, cfg.NodeID)
	if err != nil {
		return RecoverResult{}, err
	}
	logger := newHCLogger(cfg.Logger, "raft")
	// A dry run changes nothing, so it reads an earlier release's raft.db
	// where it is instead of migrating it (a recovery migrates, as a start).
	cfg.boltLog = rc.DryRun && !isDir(filepath.Join(cfg.DataDir, walDirName))
	ls, snaps, lock, err := openDataDir(cfg, logger)
	if err != nil {
		return RecoverResult{}, err
	}
	defer lock.Unlock()
	defer ls.Close()
	res := RecoverResult{NodeID: cfg.NodeID, Servers: rc.Peers, DryRun: rc.DryRun}
	if res.LastIndex, res.LastTerm, err = lastEntry(ls, snaps); err != nil {
		return RecoverResult{}, err
	}
	if rc.DryRun {
		st, after, _, _, err := loadNewestSnapshot(cfg.DataDir, snaps, nil)
		if err == nil {
			_, _, err = replayLog(cfg.DataDir, cfg.DataDir, ls, after, st)
		}
		if err != nil {
			return RecoverResult{}, err
		}
		res.Clients, res.Roles = st.ids.len(), len(st.roles)
		return res, nil
	}
	conf := raft.Configuration{}
	for _, p := range rc.Peers {
		s := raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)}
		if p.NonVoter {
			s.Suffrage = raft.Nonvoter
		}
		conf.Servers = append(conf.Servers, s)
	}
	f := newFSM(cfg.FeedSize)
	rcfg := raft.DefaultConfig()
	rcfg.LocalID, rcfg.Logger = raft.ServerID(cfg.NodeID), logger
	// The transport only names this node in the snapshot; nothing is sent.
	_, trans := raft.NewInmemTransport(raft.ServerAddress(self.Address))
	defer trans.Close()
	if err := raft.RecoverCluster(rcfg, f, ls, ls, snaps, trans, conf); err != nil {
		return RecoverResult{}, fmt.Errorf("raftstore: recovery of %s failed: %w", cfg.DataDir, err)
	}
	res.Clients, res.Roles = f.st.ids.len(), len(f.st.roles)
	return res, nil
}

func selfIn(peers []PeerSpec, id string) (PeerSpec, error) {
	for _, p := range peers {
		if p.ID == id {
			if p.NonVoter {
				return p, fmt.Errorf("%w: this node (%s) is a non-voter in it; the node being recovered must vote", ErrBadPeersFile, id)
			}
			return p, nil
		}
	}
	return PeerSpec{}, fmt.Errorf("%w: this node (%s) is not listed; list every surviving server, this one included", ErrBadPeersFile, id)
}

// lastEntry is the index and term of the newest entry the node holds, in
// its log or its newest snapshot.
func lastEntry(log raft.LogStore, snaps raft.SnapshotStore) (index, term uint64, err error) {
	if list, err := snaps.List(); err == nil && len(list) > 0 {
		index, term = list[0].Index, list[0].Term
	}
	last, err := log.LastIndex()
	if err != nil {
		return 0, 0, err
	}
	if last > index {
		var l raft.Log
		if err := log.GetLog(last, &l); err != nil {
			return 0, 0, err
		}
		index, term = l.Index, l.Term
	}
	return index, term, nil
}

// ReadPeersFile reads and parses a peers file.
func ReadPeersFile(path string) ([]PeerSpec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPeersFileBytes+1))
	if err != nil {
		return nil, err
	}
	peers, err := ParsePeers(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return peers, nil
}
