package login

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// browser is what a person's browser does here: a cookie jar, redirects
// followed (except to the URL prefixes in stopAt, which the test wants to
// see: an app's callback, a provider callback to replay), forms submitted.
type browser struct {
	t      *testing.T
	jar    *cookiejar.Jar
	c      *http.Client
	stopAt []string
}

func newBrowser(t *testing.T, stopAt ...string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, jar: jar, stopAt: stopAt}
	b.c = &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) > 15 {
			return fmt.Errorf("more than 15 redirects")
		}
		for _, p := range b.stopAt {
			if strings.HasPrefix(req.URL.String(), p) {
				return http.ErrUseLastResponse
			}
		}
		return nil
	}}
	return b
}

// page is a response with its body read.
type page struct {
	Status int
	URL    *url.URL // the URL that answered (after redirects)
	Header http.Header
	Body   string
}

func (p page) location() string { return p.Header.Get("Location") }

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return page{Status: resp.StatusCode, URL: resp.Request.URL, Header: resp.Header, Body: string(body)}
}

func (b *browser) get(u string, header ...string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

func (b *browser) post(u string, form url.Values, header ...string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

// cookie returns the value of the named cookie the jar holds for u.
func (b *browser) cookie(u, name string) string {
	pu, _ := url.Parse(u)
	for _, c := range b.jar.Cookies(pu) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// form is one HTML form: where it posts and the fields a browser sends.
type form struct {
	Action string
	Method string
	Fields url.Values
}

var (
	formRe   = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRe  = regexp.MustCompile(`(?is)<(input|button|textarea)\b([^>]*)>`)
	attrRe   = regexp.MustCompile(`(?is)([a-z_:-]+)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)`)
	denyWord = regexp.MustCompile(`(?i)deny|cancel|reject|decline`)
)

func attrs(s string) map[string]string {
	out := map[string]string{}
	for _, m := range attrRe.FindAllStringSubmatch(s, -1) {
		v := strings.Trim(m[2], `"'`)
		out[strings.ToLower(m[1])] = html.UnescapeString(v)
	}
	return out
}

// forms parses the forms of an HTML page: every named input with its
// value, and of the submit buttons only the first that does not deny.
func forms(body string, base *url.URL) []form {
	var out []form
	for _, m := range formRe.FindAllStringSubmatch(body, -1) {
		fa := attrs(m[1])
		action := base.String()
		if a, ok := fa["action"]; ok && a != "" {
			if u, err := base.Parse(a); err == nil {
				action = u.String()
			}
		}
		f := form{Action: action, Method: strings.ToUpper(fa["method"]), Fields: url.Values{}}
		submitted := false
		for _, in := range inputRe.FindAllStringSubmatch(m[2], -1) {
			a := attrs(in[2])
			name, typ := a["name"], strings.ToLower(a["type"])
			if name == "" {
				continue
			}
			if in[1] == "button" || typ == "submit" {
				if submitted || denyWord.MatchString(a["value"]+" "+name) {
					continue
				}
				submitted = true
			}
			if (typ == "checkbox" || typ == "radio") && !strings.Contains(in[2], "checked") {
				continue
			}
			f.Fields.Add(name, a["value"])
		}
		out = append(out, f)
	}
	return out
}

// signInZitadel follows start (a /login/<strategy> URL or an authorize
// URL of the provider) to the example provider's login form, submits
// user's name and password, and returns the page the redirects end at.
func (b *browser) signInZitadel(start, username, password string) page {
	b.t.Helper()
	p := b.get(start)
	fs := forms(p.Body, p.URL)
	if p.Status != 200 || len(fs) == 0 {
		b.t.Fatalf("GET %s: expected the provider's login form, got %d at %s:\n%.2000s", start, p.Status, p.URL, p.Body)
	}
	f := fs[0]
	f.Fields.Set("username", username)
	f.Fields.Set("password", password)
	return b.post(f.Action, f.Fields)
}
