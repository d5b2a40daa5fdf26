package raftstore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Keyring seals access tokens before they are proposed, so that no
// plaintext secret reaches the Raft log, snapshots or bolt files. Each key
// has a term; sealing uses the primary term, opening any known term, so
// keys rotate by adding a term, making it primary on every node, re-sealing
// what the old term sealed (reseal.go) and only then removing the old term
// (keyringfile.go; docs/operations.md "Rotate the keyring").
//
// Sealed format: version byte (1) | term (4 bytes, big endian) | nonce (12)
// | AES-256-GCM ciphertext and tag. The additional data is the clientId, so
// a sealed token cannot be moved to another client.
type Keyring struct {
	primary      uint32
	aeads        map[uint32]cipher.AEAD
	fingerprints map[uint32]string // keyFingerprint by term
}

// ErrForeignKeyring: a joining node's keyring lacks, or differs in, a key
// term the cluster holds; it could not open the tokens it would replicate.
var ErrForeignKeyring = errors.New("raftstore: the keyring is not this cluster's")

// keyFingerprint names a key without revealing it: the first 8 bytes of
// HMAC-SHA256(key, a fixed label).
func keyFingerprint(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("tcauth/keyring-fingerprint/v1"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// Fingerprint lists the keyring's terms with their key fingerprints,
// "term:hex" in ascending term order, comma-separated: what a joining node
// shows the cluster so that a foreign keyring is refused before the node
// replicates tokens it cannot open.
func (k *Keyring) Fingerprint() string {
	terms := make([]uint32, 0, len(k.fingerprints))
	for t := range k.fingerprints {
		terms = append(terms, t)
	}
	sort.Slice(terms, func(i, j int) bool { return terms[i] < terms[j] })
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = strconv.FormatUint(uint64(t), 10) + ":" + k.fingerprints[t]
	}
	return strings.Join(parts, ",")
}

// CheckFingerprint reports (ErrForeignKeyring) whether a keyring with
// fingerprint fp lacks or differs in any term this keyring holds; it may
// hold more (a rotation not yet everywhere).
func (k *Keyring) CheckFingerprint(fp string) error {
	theirs := map[uint32]string{}
	for _, part := range strings.Split(fp, ",") {
		ts, hexfp, ok := strings.Cut(part, ":")
		t, err := strconv.ParseUint(ts, 10, 32)
		if !ok || err != nil {
			return fmt.Errorf("%w: malformed fingerprint %q", ErrForeignKeyring, part)
		}
		theirs[uint32(t)] = hexfp
	}
	for t, mine := range k.fingerprints {
		got, ok := theirs[t]
		if !ok {
			return fmt.Errorf("%w: it has no key of term %d", ErrForeignKeyring, t)
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(mine)) != 1 {
			return fmt.Errorf("%w: its key of term %d differs", ErrForeignKeyring, t)
		}
	}
	return nil
}

const sealVersion = 1

// ErrUnknownKeyTerm is returned when a sealed token names a term the
// keyring does not hold.
var ErrUnknownKeyTerm = errors.New("raftstore: sealed with an unknown key term")

// NewKeyring builds a keyring from 32-byte AES-256 keys by term.
func NewKeyring(primaryTerm uint32, keys map[uint32][]byte) (*Keyring, error) {
	if _, ok := keys[primaryTerm]; !ok {
		return nil, fmt.Errorf("raftstore: keyring has no key for primary term %d", primaryTerm)
	}
	k := &Keyring{primary: primaryTerm, aeads: make(map[uint32]cipher.AEAD, len(keys)), fingerprints: make(map[uint32]string, len(keys))}
	for term, key := range keys {
		if len(key) != 32 {
			return nil, fmt.Errorf("raftstore: key term %d is %d bytes, want 32 (AES-256)", term, len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		k.aeads[term] = aead
		k.fingerprints[term] = keyFingerprint(key)
	}
	return k, nil
}

func tokenAAD(clientID string) []byte { return append([]byte("tcauth/client-token\x00"), clientID...) }

// Seal encrypts a client's token with the primary key.
func (k *Keyring) Seal(clientID string, plaintext []byte) ([]byte, error) {
	if k == nil {
		return nil, ErrNoKeyring
	}
	aead := k.aeads[k.primary]
	out := make([]byte, 5, 5+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = sealVersion
	binary.BigEndian.PutUint32(out[1:], k.primary)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, tokenAAD(clientID)), nil
}

// Open decrypts a sealed token of clientID.
func (k *Keyring) Open(clientID string, sealed []byte) ([]byte, error) {
	if k == nil {
		return nil, ErrNoKeyring
	}
	if len(sealed) < 5 || sealed[0] != sealVersion {
		return nil, errors.New("raftstore: not a sealed token")
	}
	term := binary.BigEndian.Uint32(sealed[1:5])
	aead, ok := k.aeads[term]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnknownKeyTerm, term)
	}
	rest := sealed[5:]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("raftstore: sealed token too short")
	}
	return aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], tokenAAD(clientID))
}

// PrimaryTerm is the term new tokens are sealed with.
func (k *Keyring) PrimaryTerm() uint32 { return k.primary }

// keyringFile is the on-disk form: {"primary": 2, "keys": {"1": "<base64>", "2": "<base64>"}}.
type keyringFile struct {
	Primary uint32            `json:"primary"`
	Keys    map[string]string `json:"keys"`
}

// ErrBadKeyring: a keyring file exists but cannot be used (not JSON, cut
// short, a key of the wrong length, no key for the primary term).
var ErrBadKeyring = errors.New("raftstore: damaged keyring file")

// LoadKeyringFile reads a keyring file. It refuses files other users can
// read: the keys protect every access token. A damaged file is an
// ErrBadKeyring whose message names the file and the remedy, because a
// keyring cannot be replaced by a new one: only a copy opens the tokens.
func LoadKeyringFile(path string) (*Keyring, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("raftstore: keyring %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := parseKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v; nothing was changed. Restore this file from another node or from your backup of it "+
			"(a new keyring cannot open the stored access tokens)", ErrBadKeyring, path, err)
	}
	return k, nil
}

func parseKeyring(data []byte) (*Keyring, error) {
	var f keyringFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("not a keyring (%v)", err)
	}
	if len(f.Keys) == 0 {
		return nil, errors.New("the file holds no keys")
	}
	keys := make(map[uint32][]byte, len(f.Keys))
	for t, b64 := range f.Keys {
		term, err := strconv.ParseUint(t, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bad term %q", t)
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("term %s: %v", t, err)
		}
		keys[uint32(term)] = key
	}
	return NewKeyring(f.Primary, keys)
}

// GenerateKeyringFile writes a new keyring with one random key (term 1) to
// path, mode 0600, failing if the file exists.
func GenerateKeyringFile(path string) (*Keyring, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return writeKeyring(path, 1, map[uint32][]byte{1: key}, os.O_EXCL)
}

func writeKeyring(path string, primary uint32, keys map[uint32][]byte, flag int) (*Keyring, error) {
	k, err := NewKeyring(primary, keys)
	if err != nil {
		return nil, err
	}
	f := keyringFile{Primary: primary, Keys: map[string]string{}}
	for t, key := range keys {
		f.Keys[strconv.FormatUint(uint64(t), 10)] = base64.StdEncoding.EncodeToString(key)
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := fh.Write(append(data, '\n')); err != nil {
		fh.Close()
		return nil, err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return nil, err
	}
	return k, fh.Close()
}
