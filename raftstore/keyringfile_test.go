package raftstore

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestKeyringFileEdits: add, promote and remove, table-driven from one
// starting keyring each; every refusal leaves the file byte for byte as
// it was, and every success leaves a 0600 file that loads.
func TestKeyringFileEdits(t *testing.T) {
	type step func(path string) error
	add := func(p string) error { _, err := AddKeyringTerm(p); return err }
	promote := func(n uint32) step { return func(p string) error { return PromoteKeyringTerm(p, n) } }
	remove := func(n uint32) step { return func(p string) error { return RemoveKeyringTerm(p, n) } }
	cases := []struct {
		name        string
		steps       []step
		wantErr     error
		wantPrimary uint32
		wantTerms   []uint32
	}{
		{"add keeps the primary", []step{add}, nil, 1, []uint32{1, 2}},
		{"add twice", []step{add, add}, nil, 1, []uint32{1, 2, 3}},
		{"add then promote", []step{add, promote(2)}, nil, 2, []uint32{1, 2}},
		{"full rotation", []step{add, promote(2), remove(1)}, nil, 2, []uint32{2}},
		{"after a removal the next term is still new", []step{add, promote(2), remove(1), add}, nil, 2, []uint32{2, 3}},
		{"promote an unknown term", []step{promote(7)}, ErrKeyringTermUnknown, 1, []uint32{1}},
		{"remove an unknown term", []step{add, remove(9)}, ErrKeyringTermUnknown, 1, []uint32{1, 2}},
		{"remove the primary", []step{add, remove(1)}, ErrRemovePrimary, 1, []uint32{1, 2}},
		{"remove the promoted primary", []step{add, promote(2), remove(2)}, ErrRemovePrimary, 2, []uint32{1, 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keyring.json")
			if _, err := GenerateKeyringFile(path); err != nil {
				t.Fatal(err)
			}
			var err error
			for _, s := range tc.steps {
				before, _ := os.ReadFile(path)
				if err = s(path); err != nil {
					if after, _ := os.ReadFile(path); string(after) != string(before) {
						t.Fatal("a refused edit changed the file")
					}
					break
				}
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v", st.Mode().Perm())
			}
			k, err := LoadKeyringFile(path)
			if err != nil {
				t.Fatal(err)
			}
			info := k.Info()
			var terms []uint32
			for _, tm := range info.Terms {
				terms = append(terms, tm.Term)
				if tm.Primary != (tm.Term == tc.wantPrimary) || len(tm.Fingerprint) != 16 {
					t.Fatalf("term %+v", tm)
				}
			}
			if info.Primary != tc.wantPrimary || !slices.Equal(terms, tc.wantTerms) {
				t.Fatalf("primary %d terms %v, want %d %v", info.Primary, terms, tc.wantPrimary, tc.wantTerms)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".keyring.json.tmp-*")); len(left) > 0 {
				t.Fatalf("temporary files left: %v", left)
			}
		})
	}
}

// TestKeyringFileEditsKeepKeys: a rotation keeps the old key's bytes, so
// tokens sealed before it still open; fingerprints stay those of the keys.
func TestKeyringFileEditsKeepKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	k1, err := GenerateKeyringFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := k1.Seal("c", []byte("tok"))
	term, err := AddKeyringTerm(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := PromoteKeyringTerm(path, term); err != nil {
		t.Fatal(err)
	}
	k2, err := LoadKeyringFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k2.Open("c", sealed); err != nil || string(got) != "tok" {
		t.Fatalf("old token after rotation: %q %v", got, err)
	}
	if !strings.HasPrefix(k2.Fingerprint(), k1.Fingerprint()+",") {
		t.Fatalf("fingerprints %s then %s", k1.Fingerprint(), k2.Fingerprint())
	}
	if err := k2.CheckFingerprint(k1.Fingerprint()); !errors.Is(err, ErrForeignKeyring) {
		t.Fatalf("a keyring lacking the new term passes the join check: %v", err)
	}
}

// TestKeyringFileEditsRefuseBadFiles: a file that does not load (damaged,
// readable by others, missing) is refused and left as it was.
func TestKeyringFileEditsRefuseBadFiles(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr error
	}{
		{"damaged", `{"primary":1,"keys":{"1":"c2hvcnQ="}}`, 0o600, ErrBadKeyring},
		{"not json", `{"primary":`, 0o600, ErrBadKeyring},
		{"readable by others", "", 0o644, nil},
		{"missing", "-", 0, os.ErrNotExist},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			switch tc.content {
			case "-":
			case "":
				if _, err := GenerateKeyringFile(path); err != nil {
					t.Fatal(err)
				}
				os.Chmod(path, tc.mode)
			default:
				os.WriteFile(path, []byte(tc.content), tc.mode)
			}
			before, _ := os.ReadFile(path)
			for name, edit := range map[string]func() error{
				"add":     func() error { _, err := AddKeyringTerm(path); return err },
				"promote": func() error { return PromoteKeyringTerm(path, 1) },
				"remove":  func() error { return RemoveKeyringTerm(path, 2) },
			} {
				err := edit()
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("%s: err = %v, want %v", name, err, tc.wantErr)
				}
				if after, _ := os.ReadFile(path); string(after) != string(before) {
					t.Fatalf("%s changed the file", name)
				}
			}
		})
	}
}
