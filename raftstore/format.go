package raftstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Formats of the log, snapshots and backups (DESIGN.md "Versions and
// upgrades"). A format is a number that grows when a release writes
// something an older release would misread: a new op, a new snapshot line.
//
//	1  everything up to the login records; log entries carry no version
//	2  the outbox: ops outbox-enable and outbox-ack, snapshot lines
//	   outboxStatus and outboxEvent
//	3  op reseal-tokens (re-sealing after a keyring rotation; no new
//	   snapshot content, so snapshots keep the version of their content)
const (
	// FormatVersion is the newest format this release reads and writes.
	FormatVersion = 3
	// formatOutbox is the format the outbox ops and snapshot lines need.
	formatOutbox = 2
	// formatReseal is the format op reseal-tokens needs.
	formatReseal = 3
)

var (
	// ErrUnsupportedFormat: a log entry, snapshot or backup was written in
	// a format newer than this release reads. The node stops applying
	// rather than skip it and hold a state the others do not.
	ErrUnsupportedFormat = errors.New("raftstore: written in a newer format than this release reads")
	// ErrFormatNotEnabled: a command needs a format that some member of
	// the cluster may not read (it runs an older release, or the leader has
	// not reached it yet). Nothing was proposed; retry once every member
	// is upgraded.
	ErrFormatNotEnabled = errors.New("raftstore: a cluster member may not read this command's format")
)

// opFormat is the format an op needs; ops of format 1 are written without
// a version, byte for byte as releases before versioning wrote them.
func opFormat(op Op) int {
	switch op {
	case OpOutboxEnable, OpOutboxAck:
		return formatOutbox
	case OpResealTokens:
		return formatReseal
	}
	return 1
}

// MarshalJSON writes the command with the format its op needs (the "v"
// field), so that no code path can propose a newer op unversioned.
func (c Command) MarshalJSON() ([]byte, error) {
	type plain Command // without this method
	if f := opFormat(c.Op); f > c.Format && f > 1 {
		c.Format = f
	}
	return json.Marshal(plain(c))
}

// release names this binary in refusals: its module version or VCS revision.
var release = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown release)"
	}
	rel := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 && (rel == "" || rel == "(devel)") {
			rel = s.Value[:12]
		}
	}
	if rel == "" {
		rel = "(devel)"
	}
	return rel
})

// unsupportedFormat says what was met and what to do about it.
func unsupportedFormat(what string, got, max int) error {
	return fmt.Errorf("%w: %s has format %d; this node runs tcauth %s, which reads formats up to %d: "+
		"the cluster has been written by a newer release, upgrade this node", ErrUnsupportedFormat, what, got, release(), max)
}

// checkFormat is the apply's version gate. An entry newer than max is
// ErrUnsupportedFormat (the FSM halts); an op whose format the entry does
// not declare is ErrBadCommand, as an unknown op is to older releases, so
// that every release rejects it alike.
func checkFormat(cmd *Command, max int) error {
	v := max1(cmd.Format)
	if v > max {
		return unsupportedFormat(fmt.Sprintf("log entry (op %q)", cmd.Op), v, max)
	}
	if need := opFormat(cmd.Op); need > v {
		return fmt.Errorf("%w: op %q needs format %d, the entry declares %d", ErrBadCommand, cmd.Op, need, v)
	}
	return nil
}

func max1(v int) int { return max(v, 1) }

// ---- halting ----

// halt stops the FSM for good: nothing more is applied and no snapshot is
// taken (raft would record the snapshot at the index it handed over, past
// what the state holds). Once only; the first error is kept.
func (f *fsm) halt(err error) {
	f.haltOnce.Do(func() {
		f.haltErr.Store(&err)
		close(f.halted)
		if f.onHalt != nil {
			go f.onHalt(err)
		}
	})
}

// haltedErr is the error the FSM halted with, or nil.
func (f *fsm) haltedErr() error {
	if p := f.haltErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Halted returns the error this node's state machine stopped with
// (ErrUnsupportedFormat: the cluster wrote a format this release cannot
// read), or nil while it applies. A halted node serves nothing current:
// its applied index never advances again, so it never counts as caught up.
func (s *Store) Halted() error { return s.fsm.haltedErr() }

// WaitHalted returns the error the state machine halts with, or nil when
// ctx ends or the store closes first. The control plane exits on it.
func (s *Store) WaitHalted(ctx context.Context) error {
	select {
	case <-s.fsm.halted:
		return s.fsm.haltedErr()
	case <-ctx.Done():
	case <-s.cu.stop:
	}
	return nil
}

// watchFormat snapshots once when the state starts to hold a newer format
// (the outbox turned on), so that the data directory's newest snapshot
// says so in its header: a release from before versioned log entries
// cannot recognise a newer entry, but it refuses a snapshot of a version it
// does not know when it starts.
func (s *Store) watchFormat() {
	for {
		select {
		case <-s.cu.stop:
			return
		case <-s.fsm.formatRaised:
		}
		for attempt := 0; attempt < 10; attempt++ {
			err := s.raft.Snapshot().Error()
			if err == nil || errors.Is(err, raft.ErrNothingNewToSnapshot) {
				break
			}
			select {
			case <-s.cu.stop:
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// ---- what the members read ----

// alpnPrefix names a format in TLS ALPN: every node's Raft listener offers
// the formats it reads, newest first, and the dialer learns from the
// handshake the newest format both read (the server's preference order
// picks it). A release from before versioning offers none, which reads as 1.
const alpnPrefix = "tcauth-raft-format/"

func alpnProtos(max int) []string {
	protos := make([]string, 0, max)
	for v := max; v >= 1; v-- {
		protos = append(protos, alpnPrefix+strconv.Itoa(v))
	}
	return protos
}

func alpnFormat(proto string) int {
	v, err := strconv.Atoi(strings.TrimPrefix(proto, alpnPrefix))
	if err != nil || !strings.HasPrefix(proto, alpnPrefix) || v < 1 {
		return 1
	}
	return v
}

// peerFormats remembers, per dialled address, the format its newest
// connection's handshake agreed on. A node restarted with another release
// is redialled (its old connections broke), so the entry follows it.
type peerFormats struct {
	mu sync.Mutex
	m  map[string]int
}

func (p *peerFormats) set(addr string, v int) {
	p.mu.Lock()
	if p.m == nil {
		p.m = map[string]int{}
	}
	p.m[addr] = v
	p.mu.Unlock()
}

func (p *peerFormats) get(addr string) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[addr]
	return v, ok
}

// formatWait bounds how long a leader waits to learn a member's format
// before refusing: a new leader dials every member at once, so only a
// member that is down stays unknown.
const formatWait = 2 * time.Second

// MemberFormats reports, for each member of the configuration, the newest
// format this node knows it reads: itself, its own; another member, what
// the last Raft connection to it agreed (0 = not known: never dialled, or
// a plain-TCP transport, which carries no ALPN). Meaningful on the leader,
// which dials every member.
func (s *Store) MemberFormats() map[string]int {
	servers, ok := s.configServers()
	out := map[string]int{}
	if !ok {
		return out
	}
	for _, srv := range servers {
		if string(srv.ID) == s.cfg.NodeID {
			out[string(srv.ID)] = s.fsm.maxFormat
			continue
		}
		v, _ := s.formats.get(string(srv.Address))
		out[string(srv.ID)] = v
	}
	return out
}

// requireFormat returns nil once every member is known to read format
// need, waiting up to formatWait for members not yet dialled, and
// ErrFormatNotEnabled naming the others. Once the committed state holds
// that format already, the gate is open for good: a member that cannot
// read it has halted on the entry that brought it, so another such entry
// costs nothing, and refusing would stall the outbox of a new leader that
// never reached a member which died before the failover.
func (s *Store) requireFormat(ctx context.Context, need int) error {
	if s.committedFormat() >= need {
		return nil
	}
	deadline := time.Now().Add(formatWait)
	for {
		var behind, unknown []string
		for id, v := range s.MemberFormats() {
			switch {
			case v == 0:
				unknown = append(unknown, id)
			case v < need:
				behind = append(behind, fmt.Sprintf("%s (format %d)", id, v))
			}
		}
		if len(behind) == 0 && len(unknown) == 0 {
			return nil
		}
		if len(behind) > 0 || time.Now().After(deadline) {
			sort.Strings(behind)
			sort.Strings(unknown)
			return fmt.Errorf("%w: format %d is needed, and members %s read older formats, %s not reached yet: "+
				"upgrade every member first", ErrFormatNotEnabled, need, listOrNone(behind), listOrNone(unknown))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrFormatNotEnabled, ctx.Err())
		case <-s.cu.stop:
			return ErrClosed
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// committedFormat is the newest format of anything this node applied
// (state.committedFormat): committed, so a majority holds it.
func (s *Store) committedFormat() int {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	return s.fsm.st.committedFormat
}

func listOrNone(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

// format is the newest format the state's content needs: what its
// snapshot's header says.
func (s *state) format() int { return contentFormat(s.outbox.status.Enabled) }

func contentFormat(outboxEnabled bool) int {
	if outboxEnabled {
		return formatOutbox
	}
	return 1
}
