package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/raftstore"
)

// TestKeyringFileCommands runs a whole rotation of a keyring file through
// the CLI, with the refusals on the way: exit 2 and one line for a bad
// request, the file unchanged; show never prints a key.
func TestKeyringFileCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	if _, err := raftstore.GenerateKeyringFile(path); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args     []string
		wantCode int
		want     string // in stdout (code 0) or the message
	}{
		{[]string{"keyring", "show", "--keyring", path}, 0, "term 1  fingerprint "},
		{[]string{"keyring", "add", "--keyring", path}, 0, "added term 2"},
		{[]string{"keyring", "remove", "--keyring", path, "--term", "1"}, 2, "primary term cannot be removed"},
		{[]string{"keyring", "promote", "--keyring", path, "--term", "3"}, 2, "no term 3"},
		{[]string{"keyring", "promote", "--keyring", path, "--term", "0"}, 2, "--term N is required"},
		{[]string{"keyring", "promote", "--keyring", path}, 2, "--term N is required"},
		{[]string{"keyring", "add"}, 2, "--keyring FILE is required"},
		{[]string{"keyring", "promote", "--keyring", path, "--term", "2"}, 0, "term 2 is now the primary"},
		{[]string{"keyring", "remove", "--keyring", path, "--term", "2"}, 2, "primary term cannot be removed"},
		{[]string{"keyring", "show", "--keyring", path}, 0, "term 2  fingerprint "},
		{[]string{"keyring", "remove", "--keyring", path, "--term", "1"}, 0, "removed term 1"},
		{[]string{"keyring", "show", "--keyring", filepath.Join(filepath.Dir(path), "nope.json")}, 2, "no such file"},
	}
	for _, s := range steps {
		before, _ := os.ReadFile(path)
		out, msg, code := runCLI(t, "", s.args...)
		if code != s.wantCode {
			t.Fatalf("%v: exit %d, want %d (%s%s)", s.args, code, s.wantCode, out, msg)
		}
		got := out
		if code != 0 {
			got = msg
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Fatalf("%v: refused, yet the file changed", s.args)
			}
		}
		if !strings.Contains(got, s.want) {
			t.Fatalf("%v: %q lacks %q", s.args, got, s.want)
		}
		assertNoKeys(t, path, out+msg)
	}
	out, _, code := runCLI(t, "", "keyring", "show", "--json", "--keyring", path)
	var info raftstore.KeyringInfo
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil || info.Primary != 2 || len(info.Terms) != 1 || !info.Terms[0].Primary {
		t.Fatalf("show --json: %d %s", code, out)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	// A file that does not load is refused, not rewritten.
	os.WriteFile(path, []byte(`{"primary":`), 0o600)
	if _, msg, code := runCLI(t, "", "keyring", "add", "--keyring", path); code != 2 || !strings.Contains(msg, "damaged keyring file") {
		t.Fatalf("damaged: %d %s", code, msg)
	}
}

// assertNoKeys: no key of the file appears in what the CLI printed.
func assertNoKeys(t *testing.T, path, printed string) {
	t.Helper()
	var f struct{ Keys map[string]string }
	b, _ := os.ReadFile(path)
	if json.Unmarshal(b, &f) != nil {
		return
	}
	for term, k := range f.Keys {
		raw, _ := base64.StdEncoding.DecodeString(k)
		if strings.Contains(printed, k) || strings.Contains(printed, string(raw)) {
			t.Fatalf("the key of term %s was printed", term)
		}
	}
}

// TestResealSummary: the summary says whether older terms may go.
func TestResealSummary(t *testing.T) {
	for _, tc := range []struct {
		name string
		rep  raftstore.ResealReport
		want []string
	}{
		{"done", raftstore.ResealReport{Primary: 2, ResealedTokens: 5, ResealedLoginData: 1, Entries: 1,
			TokensByTerm: map[uint32]int{2: 7}, LoginDataByTerm: map[uint32]int{2: 1}},
			[]string{"re-sealed 5 access tokens and 1 login records under term 2", "term 2 seals 7 access tokens and 1 login records", "older terms can be removed"}},
		{"some left", raftstore.ResealReport{Primary: 2, TokensByTerm: map[uint32]int{1: 3, 2: 7}},
			[]string{"term 1 seals 3 access tokens", "3 are still sealed under older terms: do not remove"}},
		{"unopenable", raftstore.ResealReport{Primary: 2, Unopenable: 2, TokensByTerm: map[uint32]int{2: 7}},
			[]string{"2 could not be opened", "do not remove"}},
	} {
		got := resealSummary(tc.rep)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", tc.name, got, w)
			}
		}
	}
}
