package main

import (
	"slices"
	"strings"
	"testing"
)

func TestPermuteArgs(t *testing.T) {
	app := newApp()
	for _, tc := range []struct{ in, want string }{
		{"tcauth client create my/c --scope a --scope b --expires 1d", "tcauth client create --scope a --scope b --expires 1d -- my/c"},
		{"tcauth client create --scope a my/c", "tcauth client create --scope a -- my/c"},
		{"tcauth client create my/c --delete-on-expiration --scope=a", "tcauth client create --delete-on-expiration --scope=a -- my/c"},
		{"tcauth scopes normalize a b", "tcauth scopes normalize -- a b"},
		{"tcauth scopes normalize --json", "tcauth scopes normalize --json"},
		{"tcauth client get x -- -odd", "tcauth client get -- x -odd"},
		// altsrc-wrapped bool flags take no value (sidecar, controlplane).
		{"tcauth sidecar --allow-insecure-control-plane --routes r.yaml --max-stale 30s", "tcauth sidecar --allow-insecure-control-plane --routes r.yaml --max-stale 30s"},
		{"tcauth controlplane --bootstrap --node-id n1", "tcauth controlplane --bootstrap --node-id n1"},
		{"tcauth cluster", "tcauth cluster"},
		{"tcauth unknown a --b", "tcauth unknown a --b"},
		{"tcauth", "tcauth"},
	} {
		got := strings.Join(permuteArgs(app, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("permuteArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if !slices.Equal(permuteArgs(app, nil), nil) {
		t.Error("nil args changed")
	}
}
