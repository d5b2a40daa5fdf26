package raftstore

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// Offline edits of a keyring file, the steps of a rotation (docs/operations.md
// "Rotate the keyring"): AddKeyringTerm adds a key that is not primary yet,
// so that every node can open what it seals before any node seals with it;
// PromoteKeyringTerm makes it primary; RemoveKeyringTerm drops an old term
// once `tcauth keyring reseal` has re-sealed everything under it. Each edit
// loads the file first (a file that does not load is left alone), writes a
// temporary file beside it (mode 0600), syncs it and renames it over the
// original, so that a crash leaves the old or the new keyring, never half.

var (
	// ErrKeyringTermUnknown: the keyring file has no key of that term.
	ErrKeyringTermUnknown = errors.New("raftstore: the keyring has no key of that term")
	// ErrRemovePrimary: the primary term seals every new token, so it
	// cannot be removed; promote another term first.
	ErrRemovePrimary = errors.New("raftstore: the primary term cannot be removed")
)

// KeyringTerm is one key of a keyring file, named by its fingerprint
// (keyFingerprint: an HMAC, never the key).
type KeyringTerm struct {
	Term        uint32 `json:"term"`
	Fingerprint string `json:"fingerprint"`
	Primary     bool   `json:"primary"`
}

// KeyringInfo describes a keyring without its keys.
type KeyringInfo struct {
	Primary uint32        `json:"primary"`
	Terms   []KeyringTerm `json:"terms"` // ascending
}

// Info describes the keyring without its keys.
func (k *Keyring) Info() KeyringInfo {
	info := KeyringInfo{Primary: k.primary, Terms: []KeyringTerm{}}
	for t, fp := range k.fingerprints {
		info.Terms = append(info.Terms, KeyringTerm{Term: t, Fingerprint: fp, Primary: t == k.primary})
	}
	sort.Slice(info.Terms, func(i, j int) bool { return info.Terms[i].Term < info.Terms[j].Term })
	return info
}

// AddKeyringTerm adds a new random key to the keyring file at path, with
// a term above every term it holds, and leaves the primary as it is. It
// returns the new term.
func AddKeyringTerm(path string) (uint32, error) {
	primary, keys, err := readKeyringKeys(path)
	if err != nil {
		return 0, err
	}
	var next uint32
	for t := range keys {
		next = max(next, t)
	}
	if next == ^uint32(0) {
		return 0, fmt.Errorf("raftstore: %s: no term left above %d", path, next)
	}
	next++
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return 0, err
	}
	keys[next] = key
	return next, replaceKeyring(path, primary, keys)
}

// PromoteKeyringTerm makes term the primary of the keyring file at path.
func PromoteKeyringTerm(path string, term uint32) error {
	_, keys, err := readKeyringKeys(path)
	if err != nil {
		return err
	}
	if _, ok := keys[term]; !ok {
		return fmt.Errorf("%w: %s has no term %d", ErrKeyringTermUnknown, path, term)
	}
	return replaceKeyring(path, term, keys)
}

// RemoveKeyringTerm drops term from the keyring file at path; the primary
// cannot be removed (ErrRemovePrimary).
func RemoveKeyringTerm(path string, term uint32) error {
	primary, keys, err := readKeyringKeys(path)
	if err != nil {
		return err
	}
	if _, ok := keys[term]; !ok {
		return fmt.Errorf("%w: %s has no term %d", ErrKeyringTermUnknown, path, term)
	}
	if term == primary {
		return fmt.Errorf("%w: term %d is %s's primary; promote another term first", ErrRemovePrimary, term, path)
	}
	delete(keys, term)
	return replaceKeyring(path, primary, keys)
}

// readKeyringKeys loads the file with LoadKeyringFile's checks (mode,
// damage) and returns its primary and raw keys.
func readKeyringKeys(path string) (uint32, map[uint32][]byte, error) {
	if _, err := LoadKeyringFile(path); err != nil {
		return 0, nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	var f keyringFile
	if err := json.Unmarshal(data, &f); err != nil {
		return 0, nil, fmt.Errorf("%w: %s: %v", ErrBadKeyring, path, err)
	}
	keys := make(map[uint32][]byte, len(f.Keys))
	for ts, b64 := range f.Keys {
		t, err := strconv.ParseUint(ts, 10, 32)
		key, err2 := base64.StdEncoding.DecodeString(b64)
		if err != nil || err2 != nil {
			return 0, nil, fmt.Errorf("%w: %s: bad term %q", ErrBadKeyring, path, ts)
		}
		keys[uint32(t)] = key
	}
	return f.Primary, keys, nil
}

// replaceKeyring writes the keyring to a temporary file beside path and
// renames it over path (atomic on POSIX file systems), then syncs the
// directory so that the rename survives a crash.
func replaceKeyring(path string, primary uint32, keys map[uint32][]byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name() // CreateTemp made it with mode 0600
	tmp.Close()
	if _, err := writeKeyring(name, primary, keys, os.O_TRUNC); err != nil {
		os.Remove(name)
		return err
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return err
	}
	_ = syncDir(filepath.Dir(path)) // best effort: the rename is done
	return nil
}
