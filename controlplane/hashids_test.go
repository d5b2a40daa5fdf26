package controlplane

import (
	"strconv"
	"testing"
)

func TestHashidsVectors(t *testing.T) {
	v := loadVectors(t)
	clients := newHashids("salt", 10)
	for off, want := range v.API.PaginateTokens {
		n, _ := strconv.ParseUint(off, 10, 64)
		if got := clients.Encode(n); got != want {
			t.Errorf("salted Encode(%d) = %q, want %q", n, got, want)
		}
		got, err := clients.Decode(want)
		if err != nil || len(got) != 1 || got[0] != n {
			t.Errorf("salted Decode(%q) = %v, %v; want [%d]", want, got, err, n)
		}
	}
	roles := newHashids("", 0)
	for off, want := range v.API.RolesTokens {
		n, _ := strconv.ParseUint(off, 10, 64)
		if got := roles.Encode(n, 10); got != want {
			t.Errorf("roles Encode(%d,10) = %q, want %q", n, got, want)
		}
	}
	got, err := roles.Decode("WluN")
	if err != nil || len(got) != 2 || int(got[0]) != v.API.RolesDecode[0] || int(got[1]) != v.API.RolesDecode[1] {
		t.Errorf("Decode(WluN) = %v, %v; want %v", got, err, v.API.RolesDecode)
	}
}

func TestHashidsDecodeRejects(t *testing.T) {
	h := newHashids("salt", 10)
	for _, tc := range []struct {
		token   string
		wantErr bool
	}{
		{"!!!", true},
		{"a b", true},
		{"aaaaaaaaaa", false}, // valid characters, not a token: decodes to nothing
		{"", false},
		{"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", false},
	} {
		got, err := h.Decode(tc.token)
		if (err != nil) != tc.wantErr {
			t.Errorf("Decode(%q) err = %v, wantErr %v", tc.token, err, tc.wantErr)
		}
		if len(got) != 0 {
			t.Errorf("Decode(%q) = %v, want nothing", tc.token, got)
		}
	}
	for n := uint64(0); n < 3000; n += 7 {
		tok := h.Encode(n)
		if len(tok) < 10 {
			t.Fatalf("Encode(%d) = %q shorter than 10", n, tok)
		}
		got, err := h.Decode(tok)
		if err != nil || len(got) != 1 || got[0] != n {
			t.Fatalf("round trip %d: %q → %v %v", n, tok, got, err)
		}
	}
}

func FuzzHashidsDecode(f *testing.F) {
	f.Add("Ovx31Wk9Po")
	f.Add("WluN")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		for _, h := range []*hashids{newHashids("salt", 10), newHashids("", 0)} {
			got, err := h.Decode(s)
			if err == nil && len(got) > 0 && h.Encode(got...) != s {
				t.Fatalf("Decode(%q) = %v does not re-encode", s, got)
			}
		}
	})
}
