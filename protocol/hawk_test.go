package protocol

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseHeader(t *testing.T) {
	const ok = `id="a", ts="1", nonce="n", mac="m"`
	cases := []struct {
		name, header string
		want         Header
		err          string
	}{
		{"minimal", "Hawk " + ok, Header{ID: "a", TS: "1", Nonce: "n", MAC: "m"}, ""},
		{"all attributes", `Hawk id="a", ts="1", nonce="n", hash="h=", ext="e+/", mac="m", app="p", dlg="d"`,
			Header{ID: "a", TS: "1", Nonce: "n", Hash: "h=", Ext: "e+/", MAC: "m", App: "p", Dlg: "d"}, ""},
		{"scheme any case", "hAwK " + ok, Header{ID: "a", TS: "1", Nonce: "n", MAC: "m"}, ""},
		{"no spaces after commas", `Hawk id="a",ts="1",nonce="n",mac="m"`, Header{ID: "a", TS: "1", Nonce: "n", MAC: "m"}, ""},
		{"spaces before commas and at end", `Hawk id="a" , ts="1",  nonce="n"	,mac="m"  `, Header{ID: "a", TS: "1", Nonce: "n", MAC: "m"}, ""},
		{"trailing comma", "Hawk " + ok + ",", Header{ID: "a", TS: "1", Nonce: "n", MAC: "m"}, ""},
		{"newline in leading whitespace", "Hawk\n " + ok, Header{ID: "a", TS: "1", Nonce: "n", MAC: "m"}, ""},
		{"unicode space separator", "Hawk\u00a0" + ok, Header{ID: "a", TS: "1", Nonce: "n", MAC: "m"}, ""},
		{"value with space and punctuation", `Hawk id="a b!#$%&'()*+,-./:;<=>?@[]^{|}~` + "`" + `", ts="1", nonce="n", mac="m"`,
			Header{ID: "a b!#$%&'()*+,-./:;<=>?@[]^{|}~`", TS: "1", Nonce: "n", MAC: "m"}, ""},

		{"empty", "", Header{}, "Unauthorized: Unauthorized"},
		{"other scheme", "Bearer abc", Header{}, "Unauthorized: Unauthorized"},
		{"other scheme alone", "Basic", Header{}, "Unauthorized: Unauthorized"},
		{"too long", "Hawk " + ok + strings.Repeat(" ", MaxHeaderLength), Header{}, "Bad Request: Header length too long"},
		{"exactly max length is parsed", "Hawk " + ok + strings.Repeat(" ", MaxHeaderLength-len("Hawk "+ok)), Header{ID: "a", TS: "1", Nonce: "n", MAC: "m"}, ""},
		{"hawk alone", "Hawk", Header{}, "Bad Request: Invalid header syntax"},
		{"hawk and spaces", "Hawk   ", Header{}, "Bad Request: Invalid header syntax"},
		{"no space after scheme", `Hawk,id="a"`, Header{}, "Bad Request: Invalid header syntax"},
		{"leading space", " Hawk " + ok, Header{}, "Bad Request: Invalid header syntax"},
		{"scheme with dash", "Ha-wk " + ok, Header{}, "Bad Request: Invalid header syntax"},
		{"newline inside attributes", "Hawk " + ok + "\n", Header{}, "Bad Request: Invalid header syntax"},
		{"U+2028 inside attributes", "Hawk id=\"a\",\u2028" + ok, Header{}, "Bad Request: Invalid header syntax"},
		{"unknown attribute", `Hawk id="a", foo="b", ts="1", nonce="n", mac="m"`, Header{}, "Bad Request: Unknown attribute: foo"},
		{"bad value (non-ASCII)", `Hawk id="issé", ts="1", nonce="n", mac="m"`, Header{}, "Bad Request: Bad attribute value: id"},
		{"empty value", `Hawk id="", ts="1", nonce="n", mac="m"`, Header{}, "Bad Request: Bad attribute value: id"},
		{"duplicate", `Hawk id="a", id="a", ts="1", nonce="n", mac="m"`, Header{}, "Bad Request: Duplicate attribute: id"},
		{"last error wins", `Hawk foo="x", id="a", id="b", ts="1", nonce="n", mac="m"`, Header{}, "Bad Request: Duplicate attribute: id"},
		{"last error wins (unknown after bad value)", `Hawk id="é", bar="x", ts="1", nonce="n", mac="m"`, Header{}, "Bad Request: Unknown attribute: bar"},
		{"error beats leftovers", `Hawk junk id="é", ts="1", nonce="n", mac="m"`, Header{}, "Bad Request: Bad attribute value: id"},
		{"leftover text", `Hawk junk, ` + ok, Header{}, "Bad Request: Bad header format"},
		{"missing comma", `Hawk id="a" ts="1", nonce="n", mac="m"`, Header{}, "Bad Request: Bad header format"},
		{"unquoted value", `Hawk id=a, ts="1", nonce="n", mac="m"`, Header{}, "Bad Request: Bad header format"},
		{"backslash in value", `Hawk id="a\"b", ts="1", nonce="n", mac="m"`, Header{}, "Bad Request: Bad header format"},
		{"unterminated value", `Hawk id="a, ts="1", nonce="n", mac="m`, Header{}, "Bad Request: Bad header format"},
		{"prefixed name", `Hawk x-id="a", ts="1", nonce="n", mac="m"`, Header{}, "Bad Request: Bad header format"},
		{"missing nonce", `Hawk id="a", ts="1", mac="m"`, Header{}, "Bad Request: Missing attributes"},
		{"missing id", `Hawk ts="1", nonce="n", mac="m"`, Header{}, "Bad Request: Missing attributes"},
		{"missing mac", `Hawk id="a", ts="1", nonce="n"`, Header{}, "Bad Request: Missing attributes"},
		{"missing ts", `Hawk id="a", nonce="n", mac="m"`, Header{}, "Bad Request: Missing attributes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseHeader(c.header)
			if c.err != "" {
				var ae *AuthError
				if !errors.As(err, &ae) || ae.Message != c.err {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func TestNormalizedString(t *testing.T) {
	cases := []struct {
		name, kind string
		a          Artifacts
		want       string
	}{
		{"ext escaping", "header", Artifacts{Method: "post", Resource: "/p?q=%2F", Host: "H", Port: 80, TS: "1", Nonce: "n", Hash: "h", Ext: "a\\b\nc"},
			"hawk.1.header\n1\nn\nPOST\n/p?q=%2F\nh\n80\nh\na\\\\b\\nc\n"},
		{"app and dlg", "header", Artifacts{Method: "GET", Resource: "/", Host: "h", Port: 1, TS: "1", Nonce: "n", App: "app", Dlg: "dlg"},
			"hawk.1.header\n1\nn\nGET\n/\nh\n1\n\n\napp\ndlg\n"},
		{"app without dlg", "header", Artifacts{Method: "GET", Resource: "/", Host: "h", Port: 1, TS: "1", Nonce: "n", App: "app"},
			"hawk.1.header\n1\nn\nGET\n/\nh\n1\n\n\napp\n\n"},
		{"absolute URL resource", "bewit", Artifacts{Method: "GET", Resource: "https://x.example/a/b?c=d", Host: "h", Port: 443, TS: "9"},
			"hawk.1.bewit\n9\n\nGET\n/a/b?c=d\nh\n443\n\n\n"},
		{"response", "response", Artifacts{Method: "GET", Resource: "/", Host: "h", Port: 443, TS: "9", Nonce: "n", Hash: "rh"},
			"hawk.1.response\n9\nn\nGET\n/\nh\n443\nrh\n\n"},
	}
	for _, c := range cases {
		if got := NormalizedString(c.kind, c.a); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	// MAC is HMAC-SHA256 of that text, also for keys longer than a block.
	long := strings.Repeat("k", 100)
	a := Artifacts{Method: "GET", Resource: "/", Host: "h", Port: 443, TS: "1", Nonce: "n"}
	if MAC("header", []byte(long), a) == MAC("header", []byte(long[:99]), a) {
		t.Error("long keys collide")
	}
	if got, want := MAC("header", []byte("no-secret"), Artifacts{Method: "GET", Resource: "/api/auth/v1/test-authenticate-get/",
		Host: "tc.example.com", Port: 443, TS: "1700000000", Nonce: "abc123"}), "aZSnuGaqz/8X8DWzS72gI8h0vFzYSXp4i1Tu7xLeKLk="; got != want {
		t.Errorf("MAC %s, want %s", got, want)
	}
}

func TestServerAuthorization(t *testing.T) {
	key := []byte("no-secret")
	req := Artifacts{Method: "GET", Resource: "/r", Host: "h", Port: 443, TS: "1700000000", Nonce: "abc123"}
	hash := PayloadHash("application/json", []byte(`{}`))
	got := ServerAuthorization(key, req, hash, `a"b\c`)
	resp := req
	resp.Hash, resp.Ext = hash, `a"b\c`
	want := `Hawk mac="` + MAC("response", key, resp) + `", hash="` + hash + `", ext="a\"b\\c"`
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if got := ServerAuthorization(key, req, "", ""); got != `Hawk mac="`+MAC("response", key, req)+`"` {
		t.Errorf("bare header %s", got)
	}
}

func TestRequestFromHTTP(t *testing.T) {
	mk := func(target, host string, hdr map[string]string, tlsOn bool) *http.Request {
		r := httptest.NewRequest("GET", target, nil)
		r.Host = host
		r.RemoteAddr = "10.0.0.9:5555"
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		if tlsOn {
			r.TLS = &tls.ConnectionState{}
		} else {
			r.TLS = nil
		}
		return r
	}
	cases := []struct {
		name    string
		r       *http.Request
		trust   bool
		host    string
		port    int
		res, ip string
	}{
		{"host port", mk("/a%2Fb?x=1&y", "Svc.Example:8080", nil, false), false, "Svc.Example", 8080, "/a%2Fb?x=1&y", "10.0.0.9"},
		{"no port, plain", mk("/", "svc", nil, false), false, "svc", 80, "/", "10.0.0.9"},
		{"no port, TLS", mk("/", "svc", nil, true), false, "svc", 443, "/", "10.0.0.9"},
		{"ipv6", mk("/", "[::1]:9", nil, false), false, "::1", 9, "/", "10.0.0.9"},
		{"forwarded ignored when untrusted", mk("/", "svc:8080", map[string]string{"X-Forwarded-Port": "443", "X-Forwarded-Proto": "https", "X-Forwarded-For": "1.2.3.4"}, false), false, "svc", 8080, "/", "10.0.0.9"},
		{"forwarded port first value", mk("/", "svc:8080", map[string]string{"X-Forwarded-Port": "8443, 80", "X-Forwarded-For": "1.2.3.4, 10.0.0.1"}, false), true, "svc", 8443, "/", "1.2.3.4"},
		{"forwarded proto https", mk("/", "svc:8080", map[string]string{"X-Forwarded-Proto": "https"}, false), true, "svc", 443, "/", "10.0.0.9"},
		{"forwarded proto not exactly https", mk("/", "svc:8080", map[string]string{"X-Forwarded-Proto": "HTTPS"}, false), true, "svc", 8080, "/", "10.0.0.9"},
		{"bad forwarded port falls through", mk("/", "svc", map[string]string{"X-Forwarded-Port": "abc"}, true), true, "svc", 443, "/", "10.0.0.9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.r.Header.Set("Authorization", "Hawk x")
			got := RequestFromHTTP(c.r, c.trust)
			want := Request{Method: "GET", Resource: c.res, Host: c.host, Port: c.port, Authorization: "Hawk x", SourceIP: c.ip}
			if got != want {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestSignRequestErrors(t *testing.T) {
	c := Credentials{ClientID: "tester", AccessToken: "no-secret"}
	for name, f := range map[string]func() error{
		"bad url":  func() error { _, err := SignRequest(c, "GET", "://x", SignOptions{}); return err },
		"no host":  func() error { _, err := SignRequest(c, "GET", "/relative", SignOptions{}); return err },
		"bad port": func() error { _, err := SignRequest(c, "GET", "http://h:99999/", SignOptions{}); return err },
		"quote in id": func() error {
			_, err := SignRequest(Credentials{ClientID: `a"b`}, "GET", "http://h/", SignOptions{})
			return err
		},
		"bad nonce": func() error { _, err := SignRequest(c, "GET", "http://h/", SignOptions{Nonce: "é"}); return err },
		"cert not object": func() error {
			_, err := SignRequest(Credentials{ClientID: "a", Certificate: "[1]"}, "GET", "http://h/", SignOptions{})
			return err
		},
		"bad authz scopes": func() error {
			_, err := SignRequest(Credentials{ClientID: "a", AuthorizedScopes: []string{"\n"}}, "GET", "http://h/", SignOptions{})
			return err
		},
	} {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// Random nonces are 6 characters of a header-safe alphabet.
	h, err := SignRequest(c, "GET", "http://h/", SignOptions{Now: time.Unix(5, 0)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseHeader(h)
	if err != nil || len(p.Nonce) != 6 || p.TS != "5" {
		t.Errorf("header %s parsed as %+v, %v", h, p, err)
	}
}

// TestPlainPrefix checks the eight-bytes-at-a-time scan against the
// obvious byte loop on every byte value at every position of a block.
func TestPlainPrefix(t *testing.T) {
	naive := func(s string) int {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				return i
			}
		}
		return len(s)
	}
	base := []byte(strings.Repeat("aZ09 ~!_", 5))
	for c := 0; c < 256; c++ {
		for pos := 0; pos < len(base); pos++ {
			b := append([]byte(nil), base...)
			b[pos] = byte(c)
			s := string(b)
			if got, want := plainPrefix(s[pos%3:]), naive(s[pos%3:]); got != want {
				t.Fatalf("plainPrefix(%q) = %d, want %d", s[pos%3:], got, want)
			}
		}
	}
}
