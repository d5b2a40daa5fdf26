package controlplane

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

func expectVector(t *testing.T, r response, v errVec) {
	t.Helper()
	if r.status != v.Status {
		t.Fatalf("status %d, want %d; body:\n%s", r.status, v.Status, r.body)
	}
	var want any
	if err := json.Unmarshal(v.Body, &want); err != nil {
		t.Fatal(err)
	}
	jsonEq(t, r.body, want)
	if v.WWWAuthenticate != "" && r.header.Get("WWW-Authenticate") != v.WWWAuthenticate {
		t.Errorf("WWW-Authenticate = %q, want %q", r.header.Get("WWW-Authenticate"), v.WWWAuthenticate)
	}
}

func TestAPIVectors(t *testing.T) {
	v := loadVectors(t)
	e := newEnv(t)
	e.addClient("caller", "caller-token-0123456789", "auth:create-client:my/*", "a:*")
	body := `{"description":"d","expires":"2024-01-01T00:00:00.000Z","scopes":["a:b","c:d"]}`

	t.Run("insufficient_createClient", func(t *testing.T) {
		r := e.api("PUT", "/clients/my%2Fclient", as("caller", "caller-token-0123456789"), withBody(body))
		expectVector(t, r, v.API.InsufficientCreateClient)
	})
	t.Run("authfailed_createClient", func(t *testing.T) {
		r := e.api("PUT", "/clients/my%2Fclient", as("caller", "wrong-token-0123456789"), withBody(body))
		expectVector(t, r, v.API.AuthFailedCreateClient)
	})
	t.Run("noauth_getClient", func(t *testing.T) {
		expectVector(t, e.api("GET", "/clients/x"), v.API.NoAuthGetClient)
	})
	t.Run("ok_getClient", func(t *testing.T) {
		e.addClient("x", "x-token-0123456789abcdef")
		e.addClient("getter", "getter-token-0123456789", "auth:get-client:x")
		r := e.api("GET", "/clients/x", as("getter", "getter-token-0123456789"))
		expectStatus(t, r, 200)
	})
	t.Run("insufficient_aws_readonly", func(t *testing.T) {
		e.addClient("caller2", "caller2-token-0123456789", "auth:aws-s3:read-only:other/*")
		// The vector names the caller "caller".
		e.put(ClientRecord{ClientID: "caller", Scopes: []string{"auth:aws-s3:read-only:other/*"}, Expires: frozen.Add(time.Hour)}, "caller-token-0123456789")
		defer e.addClient("caller", "caller-token-0123456789", "auth:create-client:my/*", "a:*")
		r := e.api("GET", "/aws/s3/read-only/bkt/a/b/", as("caller", "caller-token-0123456789"))
		expectVector(t, r, v.API.InsufficientAWS)
	})
	t.Run("two_schemes", func(t *testing.T) {
		r := e.api("GET", "/clients/x?bewit=abc", asRoot())
		expectVector(t, r, v.API.TwoSchemes)
	})
	t.Run("invalid_param", func(t *testing.T) {
		expectVector(t, e.api("GET", "/clients/bad%20id", asRoot()), v.API.InvalidParam)
	})
	t.Run("invalid_query", func(t *testing.T) {
		// The vector's query also carries bewit=y, which the reference's
		// test harness did not authenticate; through the real pipeline a
		// bewit "y" is itself a 401, so the full request is signed with a
		// header and the exact query is checked on the parser below.
		r := e.api("GET", "/clients/?limit=ten&foo=x", asRoot())
		expectVector(t, r, v.API.InvalidQuery)
		c := &call{r: &http.Request{URL: &url.URL{RawQuery: "limit=ten&foo=x&bewit=y"}},
			route: &route{query: []queryParam{qPrefix, qContinuation, qLimit}}}
		err := c.parseQuery()
		ae, ok := err.(*protocol.APIError)
		if !ok {
			t.Fatalf("parseQuery = %v", err)
		}
		var want struct{ Message string }
		_ = json.Unmarshal(v.API.InvalidQuery.Body, &want)
		if got := ae.Body("listClients", nil, nil, frozen).Message; got != want.Message {
			t.Fatalf("message %q, want %q", got, want.Message)
		}
	})
}

func TestPaginationVectors(t *testing.T) {
	v := loadVectors(t)
	e := newEnv(t)
	var ids []string
	for i := 0; i < 25; i++ {
		id := "c" + string(rune('a'+i)) // 25 ids that sort as created
		ids = append(ids, id)
		e.addClient(id, "token-0123456789abcdefgh")
	}
	for i, page := range v.API.PaginationTokens {
		path := "/clients/?prefix=c&limit=10"
		if page.SentToken != nil {
			path += "&continuationToken=" + *page.SentToken
		}
		r := e.api("GET", path, asRoot())
		expectStatus(t, r, 200)
		var got struct {
			Clients           []struct{ ClientID string }
			ContinuationToken *string
		}
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Clients) != page.Got || got.Clients[0].ClientID != ids[i*10] {
			t.Errorf("page %d: %d clients starting %s, want %d starting %s", i, len(got.Clients), got.Clients[0].ClientID, page.Got, ids[i*10])
		}
		if (got.ContinuationToken == nil) != (page.ContinuationToken == nil) ||
			(got.ContinuationToken != nil && *got.ContinuationToken != *page.ContinuationToken) {
			t.Errorf("page %d: token %v, want %v", i, got.ContinuationToken, page.ContinuationToken)
		}
	}
	r := e.api("GET", "/clients/?continuationToken=!!!", asRoot())
	m := expectError(t, r, 400, v.API.BadToken.Code)
	if !strings.HasPrefix(m["message"].(string), v.API.BadToken.Message+"\n\n---") {
		t.Errorf("message %q", m["message"])
	}
	// A token of valid characters that is not a token means offset 0.
	r = e.api("GET", "/clients/?prefix=c&limit=10&continuationToken=aaaaaaaaaa", asRoot())
	expectStatus(t, r, 200)
	if !strings.Contains(string(r.body), `"clientId": "ca"`) {
		t.Errorf("garbage token did not restart at offset 0:\n%s", r.body)
	}
}

func TestWebsocktunnelVector(t *testing.T) {
	v := loadVectors(t)
	e := newEnv(t, func(c *Config) { c.WebsocktunnelSecret = "test-secret" })
	e.addClient("static/taskcluster/worker-manager", "wm-token-0123456789abcdef", "auth:websocktunnel-token:wst-audience/*")
	r := e.api("GET", "/websocktunnel/wst-audience/worker-1", as("static/taskcluster/worker-manager", "wm-token-0123456789abcdef"))
	expectStatus(t, r, 200)
	jsonEq(t, r.body, v.WST.Reply)

	noSecret := newEnv(t)
	expectError(t, noSecret.api("GET", "/websocktunnel/wst-audience/worker-1", asRoot()), 404, "ResourceNotFound")
	expectError(t, e.api("GET", "/websocktunnel/wst-audience/worker-1"), 403, "InsufficientScopes")
	expectError(t, e.api("GET", "/websocktunnel/bad!aud/worker-1", asRoot()), 400, "InvalidRequestArguments")
}

func TestTestAuthenticateVectors(t *testing.T) {
	v := loadVectors(t)
	e := newEnv(t)
	str := func(k string) string {
		var s string
		if err := json.Unmarshal(v.TestAuth[k], &s); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return s
	}
	type reply struct {
		Status  int            `json:"status"`
		Reply   map[string]any `json:"reply"`
		Code    string         `json:"code"`
		Message string         `json:"message"`
	}
	rep := func(k string) reply {
		var r reply
		if err := json.Unmarshal(v.TestAuth[k], &r); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return r
	}
	host := viaHost("tc.example.com")
	body1 := string(v.TestAuth["body1"])

	check := func(t *testing.T, r response, want reply) {
		t.Helper()
		expectStatus(t, r, want.Status)
		if want.Reply != nil {
			jsonEq(t, r.body, want.Reply)
		}
		if want.Code != "" {
			m := r.json(t)
			if m["code"] != want.Code || !strings.HasPrefix(m["message"].(string), want.Message) {
				t.Fatalf("got %s / %q\nwant %s / prefix %q", m["code"], m["message"], want.Code, want.Message)
			}
		}
	}
	t.Run("post_ok", func(t *testing.T) {
		r := e.api("POST", "/test-authenticate", host, withBody(body1), withHeader("Authorization", str("h1")))
		check(t, r, rep("post_ok"))
	})
	t.Run("post_insufficient", func(t *testing.T) {
		r := e.api("POST", "/test-authenticate", host, withBody(`{"clientScopes":["test:a"],"requiredScopes":["test:b"]}`), withHeader("Authorization", str("h1")))
		check(t, r, rep("post_insufficient"))
	})
	t.Run("post_noauth", func(t *testing.T) {
		r := e.api("POST", "/test-authenticate", host, withBody(`{"clientScopes":["test:a"],"requiredScopes":[]}`))
		check(t, r, rep("post_noauth"))
	})
	t.Run("post_authorizedScopes", func(t *testing.T) {
		r := e.api("POST", "/test-authenticate", host, withBody(`{"clientScopes":["test:*"],"requiredScopes":["test:x"]}`), withHeader("Authorization", str("h3")))
		check(t, r, rep("post_authorizedScopes"))
	})
	t.Run("get_tempcreds", func(t *testing.T) {
		r := e.api("GET", "/test-authenticate-get/", host, withHeader("Authorization", str("h4")))
		check(t, r, rep("get_tempcreds"))
	})
	t.Run("get_bewit", func(t *testing.T) {
		r := e.api("GET", "/test-authenticate-get/?bewit="+str("bewit"), host)
		check(t, r, rep("get_bewit"))
	})
	t.Run("get_bewit_authorizedScopes", func(t *testing.T) {
		u, err := protocol.SignedURL(protocol.Credentials{ClientID: "tester", AccessToken: "no-secret", AuthorizedScopes: []string{"test:scopes-abc"}},
			"https://tc.example.com/api/auth/v1/test-authenticate-get/", 900*time.Second, frozen)
		if err != nil {
			t.Fatal(err)
		}
		r := e.do("GET", strings.TrimPrefix(u, "https://tc.example.com"), host)
		check(t, r, rep("get_bewit_authorizedScopes"))
	})
	t.Run("bad_mac", func(t *testing.T) {
		r := e.api("POST", "/test-authenticate", viaHost("other.example.com"), withBody(body1), withHeader("Authorization", str("h1")))
		expectError(t, r, 401, "AuthenticationFailed")
		if r.header.Get("WWW-Authenticate") != "hawk" {
			t.Errorf("no WWW-Authenticate: hawk")
		}
	})
}
