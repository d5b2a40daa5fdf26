package raftstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/hashicorp/raft-wal/metadb"
	"go.etcd.io/bbolt"
)

// A data directory is checked completely before raft sees it: every way it
// can be wrong (another process, another node, a damaged file, a keyring
// that cannot open the stored tokens) is refused with a DataDirError that
// names the file, what is wrong and what to do, instead of a panic deep in
// bbolt, a timeout, or a node that starts and then answers 500 or 503.
var (
	// ErrDataDirLocked: another process holds the directory's lock file.
	ErrDataDirLocked = errors.New("raftstore: data directory is in use")
	// ErrCorruptDataDir: raft.db, a snapshot or the node-id file is
	// missing, truncated or not what it should be.
	ErrCorruptDataDir = errors.New("raftstore: data directory is damaged")
	// ErrNodeIDMismatch: the directory was made by another node.
	ErrNodeIDMismatch = errors.New("raftstore: data directory belongs to another node")
	// ErrKeyringMismatch: the configured keyring cannot open an access
	// token stored in the directory (a new or another deployment's keyring).
	ErrKeyringMismatch = errors.New("raftstore: keyring does not open the stored access tokens")
)

// The files of a data directory besides raft.db and snapshots/.
const (
	LockFileName   = "tcauth.lock" // flock(2)ed while a process uses the directory; holds its pid
	NodeIDFileName = "node-id"     // the node id the directory was made for, written on first start
	boltFileName   = "raft.db"
)

// DataDirError is a refused data directory, as one line for an operator:
// the file, the problem and the remedy. Err is one of the sentinels above.
type DataDirError struct {
	Path    string
	Problem string
	Remedy  string
	Err     error
}

func (e *DataDirError) Error() string {
	return fmt.Sprintf("%s: %s; %s", e.Path, e.Problem, e.Remedy)
}

func (e *DataDirError) Unwrap() error { return e.Err }

// remedyDamaged is what to do about a damaged raft.db or snapshot: the
// node's copy of the state is lost, not the cluster's.
func remedyDamaged(dir string) string {
	return fmt.Sprintf("nothing was changed. Move %s aside (keep it for analysis); if the other nodes are healthy, "+
		"`tcauth cluster remove <this node>` and start this node again with an empty data directory and --join; "+
		"otherwise start a fresh cluster and restore your latest backup with `tcauth cluster snapshot restore FILE`", dir)
}

func damaged(path, dir, format string, args ...any) error {
	return &DataDirError{Path: path, Problem: fmt.Sprintf(format, args...), Remedy: remedyDamaged(dir), Err: ErrCorruptDataDir}
}

// DirLock is an exclusive flock(2) on a data directory's lock file. The
// kernel drops it when the process exits, so a crash leaves no stale lock.
type DirLock struct{ f *os.File }

// LockDataDir takes the directory's lock without waiting; if another
// process holds it, the error (ErrDataDirLocked) names its pid.
func LockDataDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := io.ReadAll(io.LimitReader(f, 32))
		f.Close()
		holder := "another process"
		if pid := strings.TrimSpace(string(b)); pid != "" {
			holder = "another tcauth process (pid " + pid + ")"
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			holder = "nobody known (" + err.Error() + ")"
		}
		return nil, &DataDirError{Path: dir, Problem: "the data directory is locked by " + holder,
			Remedy: "stop that process first, or give this node its own --data-dir", Err: ErrDataDirLocked}
	}
	// The pid is for the message above only; the flock is the lock.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &DirLock{f: f}, nil
}

// Unlock releases the lock (nil-safe).
func (l *DirLock) Unlock() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// HasState reports whether dir holds Raft state (a log, a snapshot or a
// recorded node id). A keyring must never be generated next to state: the
// stored tokens were sealed with another one.
func HasState(dir string) (bool, error) {
	if _, err := os.Stat(filepath.Join(dir, NodeIDFileName)); err == nil {
		return true, nil
	}
	if st, err := os.Stat(filepath.Join(dir, boltFileName)); err == nil && st.Size() > 0 {
		return true, nil
	}
	if isDir(filepath.Join(dir, walDirName)) {
		return true, nil
	}
	snaps, err := snapshotDirs(dir)
	return len(snaps) > 0, err
}

// openDataDir locks cfg.DataDir, checks it, migrates an earlier release's
// raft.db to raft-wal (walstore.go), and opens the log store and the
// snapshot store. On success the lock is held until the caller unlocks it.
func openDataDir(cfg Config, logger hclog.Logger) (logStore, raft.SnapshotStore, *DirLock, error) {
	lock, err := LockDataDir(cfg.DataDir)
	if err != nil {
		return nil, nil, nil, err
	}
	ls, snaps, err := checkAndOpen(cfg, logger)
	if err != nil {
		lock.Unlock()
		return nil, nil, nil, err
	}
	return ls, snaps, lock, nil
}

func checkAndOpen(cfg Config, logger hclog.Logger) (logStore, raft.SnapshotStore, error) {
	dir := cfg.DataDir
	recorded, err := readNodeID(dir)
	if err != nil {
		return nil, nil, err
	}
	if recorded != "" && recorded != cfg.NodeID {
		return nil, nil, nodeMismatch(dir, recorded, cfg.NodeID, "recorded in "+filepath.Join(dir, NodeIDFileName))
	}
	snapDirs, err := snapshotDirs(dir)
	if err != nil {
		return nil, nil, err
	}
	hadState := recorded != "" || len(snapDirs) > 0
	var ls logStore
	switch {
	case cfg.boltLog:
		ls, err = checkAndOpenBolt(cfg, recorded, snapDirs, hadState)
	case isDir(filepath.Join(dir, walDirName)):
		ls, err = checkAndOpenWAL(cfg, recorded, snapDirs, hadState, logger)
	case exists(filepath.Join(dir, boltFileName)):
		ls, err = migrateAndOpen(cfg, recorded, snapDirs, hadState, logger)
	case hadState:
		err = damaged(filepath.Join(dir, walDirName), dir, "the log is missing: neither %s/ nor raft.db is here, "+
			"but the directory holds a node id or snapshots (the log and the vote record are gone)", walDirName)
	default: // a new node
		ls, err = openWAL(filepath.Join(dir, walDirName), logger)
	}
	if err != nil {
		return nil, nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, cfg.SnapshotRetain, logger)
	if err == nil && recorded == "" {
		err = writeNodeID(dir, cfg.NodeID)
	}
	if err != nil {
		ls.Close()
		return nil, nil, err
	}
	return ls, snaps, nil
}

// checkAndOpenWAL checks the raft-wal log and the state it holds, then
// finishes a migration that stopped after wal/ was complete.
func checkAndOpenWAL(cfg Config, recorded string, snapDirs []string, hadState bool, logger hclog.Logger) (logStore, error) {
	walDir := filepath.Join(cfg.DataDir, walDirName)
	if err := checkWALDir(walDir, cfg.DataDir, hadState); err != nil {
		return nil, err
	}
	w, err := openWAL(walDir, logger)
	if err != nil {
		return nil, damaged(walDir, cfg.DataDir, "the log cannot be opened (%v)", err)
	}
	if err := checkStoredStateQuietly(cfg, recorded, w, walDir, snapDirs); err != nil {
		w.Close()
		return nil, err
	}
	if exists(filepath.Join(cfg.DataDir, boltFileName)) {
		if err := moveBoltAside(cfg.DataDir); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// checkWALDir refuses what raft-wal would not notice: without wal-meta.db
// it starts an empty log and deletes the segment files it does not list,
// and a damaged wal-meta.db can panic inside bbolt.
func checkWALDir(walDir, dir string, hadState bool) error {
	segments, _ := filepath.Glob(filepath.Join(walDir, "*.wal"))
	meta := filepath.Join(walDir, metadb.FileName)
	if !exists(meta) && (hadState || len(segments) > 0) {
		return damaged(meta, dir, "%s is missing but the directory holds log segments, a node id or snapshots "+
			"(the segment list and the vote record are gone)", metadb.FileName)
	}
	return checkBoltFile(meta, dir, hadState || len(segments) > 0)
}

// migrateAndOpen checks an earlier release's raft.db, copies it into wal/
// and opens that.
func migrateAndOpen(cfg Config, recorded string, snapDirs []string, hadState bool, logger hclog.Logger) (logStore, error) {
	bolt, err := checkAndOpenBoltFile(cfg, recorded, snapDirs, hadState)
	if err != nil {
		return nil, err
	}
	err = migrateToWAL(cfg.DataDir, bolt, logger)
	if cerr := bolt.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return openWAL(filepath.Join(cfg.DataDir, walDirName), logger)
}

// checkAndOpenBolt is the log store of earlier releases, raft.db, kept
// running only for tests and benchmarks (Config.boltLog): they make the
// directories the migration starts from, and measure it against raft-wal.
func checkAndOpenBolt(cfg Config, recorded string, snapDirs []string, hadState bool) (logStore, error) {
	if isDir(filepath.Join(cfg.DataDir, walDirName)) {
		return nil, fmt.Errorf("raftstore: %s holds a raft-wal log; the bolt log store cannot open it", cfg.DataDir)
	}
	return checkAndOpenBoltFile(cfg, recorded, snapDirs, hadState)
}

// checkAndOpenBoltFile checks raft.db and the state it holds (read-only,
// so a refused directory is left as it was), then opens it read-write.
func checkAndOpenBoltFile(cfg Config, recorded string, snapDirs []string, hadState bool) (*raftboltdb.BoltStore, error) {
	path := filepath.Join(cfg.DataDir, boltFileName)
	if err := checkBoltFile(path, cfg.DataDir, hadState); err != nil {
		return nil, err
	}
	if err := checkExistingState(cfg, recorded, snapDirs); err != nil {
		return nil, err
	}
	return openBolt(path, cfg.DataDir, cfg, false)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// checkExistingState runs checkStoredState on a directory that holds a
// raft.db, opened read-only, so that a refused directory is left exactly
// as it was (a read-write open already writes to it).
func checkExistingState(cfg Config, recorded string, snapDirs []string) (err error) {
	path := filepath.Join(cfg.DataDir, boltFileName)
	defer func() {
		// bbolt panics on some damaged pages met in a read (invalid page
		// type, say); raft would meet them later and crash.
		if r := recover(); r != nil {
			err = damaged(path, cfg.DataDir, "raft.db is damaged (bbolt: %v)", r)
		}
	}()
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		return nil // checkBoltFile allowed a fresh directory
	}
	bolt, err := openBolt(path, cfg.DataDir, cfg, true)
	if err != nil {
		return err
	}
	defer bolt.Close()
	return checkStoredStateQuietly(cfg, recorded, bolt, path, snapDirs)
}

// checkStoredStateQuietly is checkStoredState with a quiet snapshot store:
// the finding is reported as one line, not after raft's own log lines
// about it.
func checkStoredStateQuietly(cfg Config, recorded string, log raft.LogStore, logPath string, snapDirs []string) error {
	quiet, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, cfg.SnapshotRetain, hclog.NewNullLogger())
	if err != nil {
		return err
	}
	return checkStoredState(cfg, recorded, log, logPath, quiet, snapDirs)
}

func nodeMismatch(dir, owner, id, how string) error {
	return &DataDirError{Path: dir,
		Problem: fmt.Sprintf("this data directory belongs to node %q (%s), not %q", owner, how, id),
		Remedy:  fmt.Sprintf("nothing was changed. Start it with --node-id %s, or give node %s its own (empty) data directory", owner, id),
		Err:     ErrNodeIDMismatch}
}

func readNodeID(dir string) (string, error) {
	path := filepath.Join(dir, NodeIDFileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(b))
	if id == "" || strings.ContainsAny(id, "\n\x00") {
		return "", &DataDirError{Path: path, Problem: "the node-id file is empty or garbled",
			Remedy: "write this directory's node id into it (the --node-id it was started with)", Err: ErrCorruptDataDir}
	}
	return id, nil
}

// writeNodeID records id atomically (temp file, fsync, rename).
func writeNodeID(dir, id string) error {
	tmp := filepath.Join(dir, NodeIDFileName+".tmp")
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return err
	}
	if f, err := os.Open(tmp); err == nil {
		_ = f.Sync()
		f.Close()
	}
	return os.Rename(tmp, filepath.Join(dir, NodeIDFileName))
}

// snapshotDirs lists the snapshot directories raft would consider (not its
// temporary ones).
func snapshotDirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// openBolt opens raft.db. checkBoltFile has looked at it first; the
// recover is the last line of defence, because bbolt panics on some
// damage (a freelist page that is not one) instead of returning an error.
func openBolt(path, dir string, cfg Config, readOnly bool) (bolt *raftboltdb.BoltStore, err error) {
	defer func() {
		if r := recover(); r != nil {
			bolt, err = nil, damaged(path, dir, "raft.db is damaged (bbolt: %v)", r)
		}
	}()
	// Our lock file keeps other tcauth processes out, so waiting on
	// bbolt's own lock would only hide a foreign process: fail fast.
	bolt, err = raftboltdb.New(raftboltdb.Options{Path: path,
		BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: !cfg.freelistSync, FreelistType: cfg.boltFreelist, ReadOnly: readOnly}})
	if err != nil {
		return nil, damaged(path, dir, "raft.db cannot be opened (%v)", err)
	}
	return bolt, nil
}

// bbolt's on-disk layout (go.etcd.io/bbolt internal/common): a page
// header, then in pages 0 and 1 the meta record, checksummed with FNV-64a.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltPageHeader   = 16
	boltMetaSize     = 64
	boltFlagBranch   = 0x01
	boltFlagLeaf     = 0x02
	boltFlagFreelist = 0x10
	boltNoFreelist   = ^uint64(0)
)

type boltMeta struct {
	pageSize                uint32
	root, freelist, hwm, tx uint64
}

// checkBoltFile validates raft.db's meta pages and that the pages they
// point at exist and are what they should be, before bbolt maps the file:
// a truncated file otherwise panics inside bbolt and a foreign one is
// reported as just "invalid database". A missing or empty raft.db is fine
// only for a directory that has never held state.
func checkBoltFile(path, dir string, hadState bool) error {
	name := filepath.Base(path)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if hadState {
			return damaged(path, dir, "%s is missing but the directory holds a node id or snapshots (the log and the vote record are gone)", name)
		}
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		if hadState {
			return damaged(path, dir, "%s is empty but the directory holds a node id or snapshots", name)
		}
		return nil
	}
	m, err := readBoltMeta(f, st.Size())
	if err != nil {
		return damaged(path, dir, "%s is not a usable bbolt database (%v)", name, err)
	}
	if err := checkBoltPages(f, st.Size(), m); err != nil {
		return damaged(path, dir, "%s is truncated or damaged (%v)", name, err)
	}
	return nil
}

// readBoltMeta returns the newest valid meta page, as bbolt picks it.
func readBoltMeta(f io.ReaderAt, size int64) (boltMeta, error) {
	m0, err0 := readMetaAt(f, 0)
	pageSize := int64(os.Getpagesize())
	if err0 == nil {
		pageSize = int64(m0.pageSize)
	}
	m1, err1 := readMetaAt(f, pageSize)
	switch {
	case err0 != nil && err1 != nil:
		return boltMeta{}, err0
	case err0 != nil:
		m0 = m1
	case err1 == nil && m1.tx > m0.tx:
		m0 = m1
	}
	if int64(m0.pageSize)*2 > size {
		return boltMeta{}, fmt.Errorf("%d bytes, smaller than two %d-byte meta pages", size, m0.pageSize)
	}
	return m0, nil
}

func readMetaAt(f io.ReaderAt, off int64) (boltMeta, error) {
	buf := make([]byte, boltPageHeader+boltMetaSize)
	if _, err := f.ReadAt(buf, off); err != nil {
		return boltMeta{}, fmt.Errorf("meta page at byte %d: %v", off, err)
	}
	b := buf[boltPageHeader:]
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != boltMagic {
		return boltMeta{}, errors.New("no bbolt magic number: not a bbolt file")
	}
	if v := le.Uint32(b[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("bbolt format version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(b[:56])
	if h.Sum64() != le.Uint64(b[56:]) {
		return boltMeta{}, fmt.Errorf("meta page at byte %d fails its checksum", off)
	}
	m := boltMeta{pageSize: le.Uint32(b[8:]), root: le.Uint64(b[16:]), freelist: le.Uint64(b[32:]),
		hwm: le.Uint64(b[40:]), tx: le.Uint64(b[48:])}
	if m.pageSize < 512 || m.pageSize > 1<<20 || m.pageSize&(m.pageSize-1) != 0 {
		return boltMeta{}, fmt.Errorf("implausible page size %d", m.pageSize)
	}
	return m, nil
}

// checkBoltPages checks that the file holds every page up to the high
// water mark, and that the root and freelist pages are what they claim.
func checkBoltPages(f io.ReaderAt, size int64, m boltMeta) error {
	ps := int64(m.pageSize)
	if m.hwm < 2 || m.hwm > uint64(size/ps) {
		return fmt.Errorf("%d bytes hold %d pages, the database has %d", size, size/ps, m.hwm)
	}
	if m.root < 2 || m.root >= m.hwm {
		return fmt.Errorf("root page %d outside the database's %d pages", m.root, m.hwm)
	}
	if err := checkPage(f, ps, m.root, m.hwm, boltFlagBranch|boltFlagLeaf); err != nil {
		return fmt.Errorf("root: %w", err)
	}
	if m.freelist == boltNoFreelist {
		return nil
	}
	if m.freelist < 2 || m.freelist >= m.hwm {
		return fmt.Errorf("freelist page %d outside the database's %d pages", m.freelist, m.hwm)
	}
	if err := checkPage(f, ps, m.freelist, m.hwm, boltFlagFreelist); err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	return nil
}

func checkPage(f io.ReaderAt, ps int64, id, hwm uint64, flags uint16) error {
	var h [boltPageHeader]byte
	if _, err := f.ReadAt(h[:], int64(id)*ps); err != nil {
		return fmt.Errorf("page %d: %v", id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(h[0:]); got != id {
		return fmt.Errorf("page %d has id %d", id, got)
	}
	if le.Uint16(h[8:])&flags == 0 {
		return fmt.Errorf("page %d has flags %#x", id, le.Uint16(h[8:]))
	}
	if overflow := uint64(le.Uint32(h[12:])); id+overflow >= hwm {
		return fmt.Errorf("page %d overflows past the database's %d pages", id, hwm)
	}
	return nil
}

// checkStoredState replays the newest snapshot and the log after it into a
// scratch state — exactly what the FSM will hold once the log is applied —
// and checks that the node belongs to the stored Raft configuration and
// that the keyring opens every stored access token. Raft itself would skip
// an unreadable snapshot and fall back to an older one (or none), silently
// losing what was compacted away; here it is refused.
func checkStoredState(cfg Config, recorded string, log raft.LogStore, logPath string, snaps raft.SnapshotStore, snapDirs []string) error {
	dir := cfg.DataDir
	st, after, conf, source, err := loadNewestSnapshot(dir, snaps, snapDirs)
	if source == "" {
		source = logPath
	}
	if err != nil {
		return err
	}
	fromSnapshot := maps.Clone(st.clients) // records are replaced, never changed, by applies
	logConf, found, err := replayLog(logPath, dir, log, after, st)
	if err != nil {
		return err
	}
	if found {
		conf = logConf
	}
	if recorded == "" && len(conf.Servers) > 0 && !hasServer(conf, cfg.NodeID) {
		return nodeMismatch(dir, string(conf.Servers[0].ID), cfg.NodeID, "its stored Raft configuration lists "+serverIDs(conf))
	}
	if cfg.Keyring == nil {
		return nil
	}
	for id := range st.ids.keys() {
		c := st.clients[id]
		if _, err := cfg.Keyring.Open(id, c.SealedToken); err != nil {
			if fromSnapshot[id] != c {
				source = logPath
			}
			return keyringMismatch(source, "the stored access token of client "+id, c.SealedToken, err)
		}
	}
	// Login records' data is sealed with the same keyring (login.go); a
	// session or grant the keyring cannot open would fail only when used.
	for _, r := range st.logins {
		if len(r.SealedData) == 0 {
			continue
		}
		if _, err := cfg.Keyring.Open(loginSealID(r.Kind, r.Key), r.SealedData); err != nil {
			return keyringMismatch(source, "the stored data of a login record ("+r.Kind+")", r.SealedData, err)
		}
	}
	return nil
}

// keyringMismatch says why the keyring cannot open what stored state
// holds: a term it lacks (removed from this node's file before `tcauth
// keyring reseal` re-sealed everything under it) or another keyring.
func keyringMismatch(source, what string, sealed []byte, err error) error {
	if t, ok := sealedTerm(sealed); ok && errors.Is(err, ErrUnknownKeyTerm) {
		return &DataDirError{Path: source,
			Problem: fmt.Sprintf("the configured keyring has no key of term %d, which still seals %s (and perhaps others): "+
				"the term was removed from this node's keyring file before `tcauth keyring reseal` had re-sealed everything under it", t, what),
			Remedy: fmt.Sprintf("nothing was changed. Put term %d back into this node's keyring file (copy the file from a node that still has it, "+
				"or from your backup of it), start the node, run `tcauth keyring reseal`, and remove the term only once it reports no token under it", t),
			Err: ErrKeyringMismatch}
	}
	return &DataDirError{Path: source,
		Problem: fmt.Sprintf("the configured keyring cannot open %s (%v): it is not the keyring this cluster's tokens were sealed with", what, err),
		Remedy:  "nothing was changed. Start with the cluster's keyring (--keyring FILE: a copy from another node or from your backup of it)",
		Err:     ErrKeyringMismatch}
}

func hasServer(conf raft.Configuration, id string) bool {
	for _, s := range conf.Servers {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}

func serverIDs(conf raft.Configuration) string {
	ids := make([]string, len(conf.Servers))
	for i, s := range conf.Servers {
		ids[i] = string(s.ID)
	}
	return strings.Join(ids, ", ")
}

// loadNewestSnapshot reads the newest snapshot completely (raft's CRC and
// our format checks). Every snapshot directory must have readable
// metadata: raft would skip one that has not.
func loadNewestSnapshot(dir string, snaps raft.SnapshotStore, snapDirs []string) (*state, uint64, raft.Configuration, string, error) {
	for _, name := range snapDirs {
		meta := filepath.Join(dir, "snapshots", name, "meta.json")
		b, err := os.ReadFile(meta)
		var m raft.SnapshotMeta
		if err == nil {
			err = json.Unmarshal(b, &m)
		}
		if err != nil {
			return nil, 0, raft.Configuration{}, "", damaged(meta, dir, "snapshot metadata is unreadable (%v)", err)
		}
	}
	list, err := snaps.List()
	if err != nil || len(list) == 0 {
		return newState(), 0, raft.Configuration{}, "", err
	}
	newest := list[0]
	path := filepath.Join(dir, "snapshots", newest.ID, "state.bin")
	_, rc, err := snaps.Open(newest.ID)
	if err != nil {
		return nil, 0, raft.Configuration{}, "", damaged(path, dir, "the newest snapshot is truncated or damaged (%v)", err)
	}
	defer rc.Close()
	st, _, err := readSnapshot(rc)
	if err != nil {
		return nil, 0, raft.Configuration{}, "", damaged(path, dir, "the newest snapshot is not a readable tcauth snapshot (%v)", err)
	}
	return st, newest.Index, newest.Configuration, path, nil
}

// replayLog applies the log entries after index `after` to st, as the FSM
// will, and returns the newest configuration entry among them.
func replayLog(path, dir string, log raft.LogStore, after uint64, st *state) (conf raft.Configuration, found bool, err error) {
	first, err := log.FirstIndex()
	if err != nil {
		return conf, false, damaged(path, dir, "the log is unreadable (%v)", err)
	}
	last, err := log.LastIndex()
	if err != nil {
		return conf, false, damaged(path, dir, "the log is unreadable (%v)", err)
	}
	if first == 0 {
		return conf, false, nil
	}
	for i := max(first, after+1); i <= last; i++ {
		var l raft.Log
		if err := log.GetLog(i, &l); err != nil {
			return conf, false, damaged(path, dir, "log entry %d is unreadable (%v)", i, err)
		}
		switch l.Type {
		case raft.LogCommand:
			// Rejected or undecodable commands change nothing, as in the
			// FSM; an entry of a newer format would halt it, so the node
			// does not start.
			if _, _, err := applyCommand(st, l.Index, l.Data, FormatVersion); errors.Is(err, ErrUnsupportedFormat) {
				return conf, false, fmt.Errorf("raftstore: %s: log entry %d: %w", path, i, err)
			}
		case raft.LogConfiguration:
			c, err := decodeConfiguration(l.Data)
			if err != nil {
				return conf, false, damaged(path, dir, "log entry %d: %v", i, err)
			}
			conf, found = c, true
		}
	}
	return conf, found, nil
}

// decodeConfiguration wraps raft.DecodeConfiguration, which panics on bad
// bytes.
func decodeConfiguration(b []byte) (c raft.Configuration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable Raft configuration: %v", r)
		}
	}()
	return raft.DecodeConfiguration(b), nil
}
