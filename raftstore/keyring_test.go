package raftstore

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyringSealOpen(t *testing.T) {
	k := TestKeyring(t)
	sealed, err := k.Seal("client-a", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret")) {
		t.Fatal("plaintext visible")
	}
	if got, err := k.Open("client-a", sealed); err != nil || string(got) != "secret" {
		t.Fatalf("open = %q %v", got, err)
	}
	// Bound to the clientId: a sealed token cannot move to another client.
	if _, err := k.Open("client-b", sealed); err == nil {
		t.Fatal("opened under another clientId")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := k.Open("client-a", tampered); err == nil {
		t.Fatal("tampered token opened")
	}
	for _, bad := range [][]byte{nil, {1}, {2, 0, 0, 0, 1}, sealed[:10]} {
		if _, err := k.Open("client-a", bad); err == nil {
			t.Errorf("%x opened", bad)
		}
	}
	if _, err := NewKeyring(1, map[uint32][]byte{1: make([]byte, 16)}); err == nil {
		t.Fatal("16-byte key accepted")
	}
	if _, err := NewKeyring(2, map[uint32][]byte{1: make([]byte, 32)}); err == nil {
		t.Fatal("missing primary accepted")
	}
}

func TestKeyringFileRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	k1, err := GenerateKeyringFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKeyringFile(path); err == nil {
		t.Fatal("overwrote an existing keyring")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	old, _ := k1.Seal("c", []byte("old-token"))
	term, err := AddKeyringTerm(path)
	if err == nil {
		err = PromoteKeyringTerm(path, term)
	}
	k2, err2 := LoadKeyringFile(path)
	if err != nil || err2 != nil {
		t.Fatal(err, err2)
	}
	if k2.PrimaryTerm() != 2 {
		t.Fatalf("primary term %d", k2.PrimaryTerm())
	}
	if got, err := k2.Open("c", old); err != nil || string(got) != "old-token" {
		t.Fatalf("old term after rotation: %q %v", got, err)
	}
	newSealed, _ := k2.Seal("c", []byte("new-token"))
	if _, err := k1.Open("c", newSealed); !errors.Is(err, ErrUnknownKeyTerm) {
		t.Fatalf("old keyring opening new term: %v", err)
	}
	loaded, err := LoadKeyringFile(path)
	if err != nil || loaded.PrimaryTerm() != 2 {
		t.Fatalf("reload: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadKeyringFile(path); err == nil {
		t.Fatal("world-readable keyring accepted")
	}
}

// TestLoadKeyringFileDamaged: every way a keyring file can be damaged is an
// ErrBadKeyring naming the file and the remedy, on one line.
func TestLoadKeyringFileDamaged(t *testing.T) {
	good := filepath.Join(t.TempDir(), "keyring.json")
	if _, err := GenerateKeyringFile(good); err != nil {
		t.Fatal(err)
	}
	whole, _ := os.ReadFile(good)
	short := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	for name, data := range map[string][]byte{
		"empty":           nil,
		"cut short":       whole[:len(whole)/2],
		"garbage":         []byte("\x00\x01not json"),
		"no keys":         []byte(`{"primary": 1, "keys": {}}`),
		"primary missing": []byte(`{"primary": 2, "keys": {"1": "` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"}}`),
		"short key":       []byte(`{"primary": 1, "keys": {"1": "` + short + `"}}`),
		"bad base64":      []byte(`{"primary": 1, "keys": {"1": "!!!"}}`),
		"bad term":        []byte(`{"primary": 1, "keys": {"one": "AAAA"}}`),
		"json of another": []byte(`[1, 2, 3]`),
	} {
		path := filepath.Join(t.TempDir(), "keyring.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKeyringFile(path)
		if !errors.Is(err, ErrBadKeyring) {
			t.Errorf("%s: %v, want ErrBadKeyring", name, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "backup") || strings.Contains(msg, "\n") {
			t.Errorf("%s: message lacks the file or the remedy: %q", name, msg)
		}
	}
}

// TestKeyringFingerprint: a keyring accepts its own fingerprint and one
// with extra terms (a rotation that reached the joiner first); a missing
// or different term, or a malformed fingerprint, is ErrForeignKeyring.
func TestKeyringFingerprint(t *testing.T) {
	key := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	mine, err := NewKeyring(2, map[uint32][]byte{1: key(1), 2: key(2)})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(primary uint32, keys map[uint32][]byte) string {
		k, err := NewKeyring(primary, keys)
		if err != nil {
			t.Fatal(err)
		}
		return k.Fingerprint()
	}
	for _, tc := range []struct {
		name string
		fp   string
		ok   bool
	}{
		{"the same keys", mk(2, map[uint32][]byte{1: key(1), 2: key(2)}), true},
		{"a further term as well", mk(3, map[uint32][]byte{1: key(1), 2: key(2), 3: key(3)}), true},
		{"a term missing", mk(2, map[uint32][]byte{2: key(2)}), false},
		{"a different key", mk(2, map[uint32][]byte{1: key(1), 2: key(9)}), false},
		{"same key, other term", mk(3, map[uint32][]byte{1: key(1), 3: key(2)}), false},
		{"malformed", "1:", false},
		{"empty", "", false},
	} {
		err := mine.CheckFingerprint(tc.fp)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrForeignKeyring)) {
			t.Errorf("%s (%q): %v", tc.name, tc.fp, err)
		}
	}
	if fp := mine.Fingerprint(); strings.Contains(fp, string(key(1))) || len(fp) != len("1:0123456789abcdef,2:0123456789abcdef") {
		t.Errorf("fingerprint %q", fp)
	}
}
