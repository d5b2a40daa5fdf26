package protocol

import (
	"regexp"
	"strings"
	"testing"
)

var clientIDRegexp = regexp.MustCompile(ClientIDPattern)

func TestValidClientID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"alice", true},
		{"static/taskcluster/root", true},
		{"project/x:y.z+w|v_u-t!s@r", true},
		{strings.Repeat("a", 4000), true},
		{"", false},
		{"bad id", false},
		{"tab\there", false},
		{"new\nline", false},
		{"nul\x00", false},
		{"quote\"", false},
		{"comma,", false},
		{"percent%2F", false},
		{"star*", false},
		{"ünïcode", false},
		{"emoji😀", false},
		{"\xff\xfe", false},
		{"semi;colon", false},
		{"back\\slash", false},
	} {
		if got := ValidClientID(tc.id); got != tc.want {
			t.Errorf("ValidClientID(%q) = %v, want %v", tc.id, got, tc.want)
		}
		if re := clientIDRegexp.MatchString(tc.id); re != tc.want {
			t.Errorf("pattern on %q = %v, want %v", tc.id, re, tc.want)
		}
	}
}

// FuzzValidClientID: the byte loop and the published pattern agree.
func FuzzValidClientID(f *testing.F) {
	for _, s := range []string{"alice", "", "a b", "ü", "a/b:c", "\x00", "!@/:.+|_-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if ValidClientID(id) != clientIDRegexp.MatchString(id) {
			t.Fatalf("ValidClientID(%q) = %v, the pattern says %v", id, ValidClientID(id), !ValidClientID(id))
		}
	})
}
