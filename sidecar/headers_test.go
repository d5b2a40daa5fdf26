package sidecar

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

func TestScopesJSON(t *testing.T) {
	for _, in := range [][]string{
		nil,
		{},
		{"a"},
		{"queue:create-task:*", `quote"d`, `back\slash`, "sp ace", "~!@#$%^&*()<>"},
	} {
		got := scopesJSON(in)
		want, _ := json.Marshal(in)
		if in == nil {
			want = []byte("[]")
		}
		var back []string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Fatalf("%q is not JSON: %v", got, err)
		}
		if len(in) > 0 && !slices.Equal(back, in) {
			t.Errorf("round trip %v → %q → %v", in, got, back)
		}
		// encoding/json escapes <, > and & as \u003c…; compare decoded.
		var ref []string
		_ = json.Unmarshal(want, &ref)
		if !slices.Equal(ref, back) && len(in) > 0 {
			t.Errorf("%q differs from encoding/json's %q", got, want)
		}
	}
	if got := scopesJSON([]string{"a\x01"}); got != `["a\u0001"]` {
		t.Errorf("control byte: %q", got)
	}
}

func TestStripIdentity(t *testing.T) {
	h := http.Header{
		"X-Taskcluster-Client-Id": {"a"},
		"x_taskcluster_scopes":    {"b"},
		"X-Taskcluster":           {"not in the namespace (no trailing dash)"},
		"X-Taskclusterx-Foo":      {"other namespace"},
		"Authorization":           {"keep"},
		"Connection":              {"X_TASKCLUSTER-Expires, Upgrade", "x-taskcluster-route"},
	}
	stripIdentity(h)
	want := http.Header{
		"X-Taskcluster":      {"not in the namespace (no trailing dash)"},
		"X-Taskclusterx-Foo": {"other namespace"},
		"Authorization":      {"keep"},
		"Connection":         {"Upgrade"},
	}
	if len(h) != len(want) {
		t.Fatalf("got %v, want %v", h, want)
	}
	for k, v := range want {
		if !slices.Equal(h[k], v) {
			t.Errorf("%s = %v, want %v", k, h[k], v)
		}
	}
	h = http.Header{"Connection": {"x-taskcluster-client-id"}}
	stripIdentity(h)
	if _, ok := h["Connection"]; ok {
		t.Errorf("empty Connection kept: %v", h)
	}
}
