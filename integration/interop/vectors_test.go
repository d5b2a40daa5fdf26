package interop

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// specDir holds the reference vectors (testdata/spec/README.md).
const specDir = "../../testdata/spec"

// The pinned peers must reproduce the reference vectors (computed with
// the package versions testdata/spec/README.md names). This catches a peer upgrade that changes
// behaviour before it makes the interop tests prove the wrong thing.
func TestPeersReproduceSpecVectors(t *testing.T) {
	requireNode(t)
	raw, err := os.ReadFile(specDir + "/protocol-vectors.json")
	if err != nil {
		t.Fatalf("spec vectors: %v", err)
	}
	var v struct {
		HeaderGet struct {
			URL, Method, ID, Key, Nonce, Header string
			TS                                  int64
		} `json:"header_get"`
		HeaderPost struct {
			URL, Method, Payload, ContentType, Nonce, Header string
			TS                                               int64
		} `json:"header_post_payload"`
		HeaderExt struct {
			URL, Method, Nonce, Header string
			ExtJSON                    json.RawMessage `json:"ext_json"`
			TS                         int64
		} `json:"header_ext"`
		Bewit struct {
			URL    string
			TTLSec int64 `json:"ttlSec"`
			Exp    int64
			Bewit  string
		}
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("protocol-vectors.json: %v", err)
	}
	// The vectors sign as tester / no-secret unless they say otherwise.
	id, key := v.HeaderGet.ID, v.HeaderGet.Key
	extText, err := compactJSON(v.HeaderExt.ExtJSON)
	if err != nil {
		t.Fatal(err)
	}
	bewitNow := (v.Bewit.Exp - v.Bewit.TTLSec) * 1000
	rootURL, path, _ := strings.Cut(strings.TrimPrefix(v.Bewit.URL, "http://"), "/")

	hawkCases := []any{
		map[string]any{"op": "header", "id": id, "key": key, "method": v.HeaderGet.Method, "url": v.HeaderGet.URL,
			"ts": v.HeaderGet.TS, "nonce": v.HeaderGet.Nonce},
		map[string]any{"op": "header", "id": id, "key": key, "method": v.HeaderPost.Method, "url": v.HeaderPost.URL,
			"ts": v.HeaderPost.TS, "nonce": v.HeaderPost.Nonce, "payload": v.HeaderPost.Payload, "contentType": v.HeaderPost.ContentType},
		map[string]any{"op": "header", "id": id, "key": key, "method": v.HeaderExt.Method, "url": v.HeaderExt.URL,
			"ts": v.HeaderExt.TS, "nonce": v.HeaderExt.Nonce, "ext": base64.StdEncoding.EncodeToString([]byte(extText))},
		map[string]any{"op": "bewit", "id": id, "key": key, "url": v.Bewit.URL, "ttlSec": v.Bewit.TTLSec, "now": bewitNow},
	}
	out := runNode(t, "hawk.js", hawkCases)
	for i, want := range []string{v.HeaderGet.Header, v.HeaderPost.Header, v.HeaderExt.Header} {
		var h struct{ Header string }
		out[i].value(t, "@hapi/hawk header vector", &h)
		if h.Header != want {
			t.Errorf("@hapi/hawk header vector %d:\n got %s\nwant %s", i, h.Header, want)
		}
	}
	var bewit string
	out[3].value(t, "@hapi/hawk bewit vector", &bewit)
	if bewit != v.Bewit.Bewit {
		t.Errorf("@hapi/hawk bewit %s, want %s", bewit, v.Bewit.Bewit)
	}

	if path != "api/auth/v1/test-authenticate-get/" {
		t.Fatalf("bewit vector URL %q is not testAuthenticateGet; update this test", v.Bewit.URL)
	}
	var signed string
	call(t, "tc.js", map[string]any{"op": "buildSignedUrl", "rootUrl": "http://" + rootURL, "method": "testAuthenticateGet",
		"credentials": map[string]string{"clientId": id, "accessToken": key}, "expiration": v.Bewit.TTLSec, "now": bewitNow}, &signed)
	if want := v.Bewit.URL + "?bewit=" + v.Bewit.Bewit; signed != want {
		t.Errorf("taskcluster-client signed URL\n got %s\nwant %s", signed, want)
	}
}

// compactJSON strips the whitespace from JSON text, keeping key order: what
// JSON.stringify gives for the vectors' ext objects.
func compactJSON(raw json.RawMessage) (string, error) {
	var b bytes.Buffer
	err := json.Compact(&b, raw)
	return b.String(), err
}
