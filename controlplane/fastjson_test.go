package controlplane

import (
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// The fast writer must produce marshalPretty's bytes exactly, or decline.
func TestAppendSuccessPretty(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC)
	for _, tc := range []struct {
		name    string
		res     protocol.Result
		handled bool
	}{
		{"full", protocol.Result{Status: protocol.StatusSuccess, Scheme: "hawk", Expires: exp, Scopes: []string{"a", "b:*"}, ClientID: "c/1", Hash: "abc="}, true},
		{"no scopes", protocol.Result{Status: protocol.StatusSuccess, Scheme: "bewit", Expires: exp, Scopes: nil, ClientID: "c"}, true},
		{"empty scopes no expiry", protocol.Result{Status: protocol.StatusSuccess, Scheme: "hawk", Scopes: []string{}, ClientID: "c"}, true},
		{"html chars", protocol.Result{Status: protocol.StatusSuccess, Scheme: "hawk", Scopes: []string{"a<b>&c"}, ClientID: "c"}, true},
		{"quote", protocol.Result{Status: protocol.StatusSuccess, Scheme: "hawk", Scopes: []string{`a"b`}, ClientID: "c"}, false},
		{"unicode", protocol.Result{Status: protocol.StatusSuccess, Scheme: "hawk", Scopes: []string{"é"}, ClientID: "c"}, false},
		{"failed", protocol.Result{Status: protocol.StatusFailed, Message: "no"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := appendSuccessPretty(nil, tc.res)
			if ok != tc.handled {
				t.Fatalf("handled = %v, want %v", ok, tc.handled)
			}
			if !ok {
				return
			}
			want, err := marshalPretty(tc.res)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatalf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}
