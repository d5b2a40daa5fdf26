package webui

import (
	"encoding/json"
	"html/template"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tcauth/tcauth/protocol/tcclient"
)

// testCrossOrigin: a page of another origin whose form auto-submits to
// the UI's reset and delete endpoints — with every field the UI's own
// form has, its CSRF token included, as if it had leaked — changes
// nothing. Two attackers: another port of 127.0.0.1 (same site, so the
// SameSite=Strict session cookie is sent and only the origin check
// stands) and 127.0.0.2 (another site).
func (s *suite) testCrossOrigin(t *testing.T) {
	s.alice.signIn(t)
	id := identityOf(alice) + "/csrf-victim"
	body := map[string]any{"description": "target of the cross-origin posts", "scopes": []string{"it:ui:read"},
		"expires": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	if err := s.c.Client(0, nil).Do(ctxT(t), http.MethodPut, "/clients/"+tcclient.PathSegment(id), nil, body, nil); err != nil {
		t.Fatal(err)
	}
	tb := s.alice.tab(t)
	targets := map[string]formInfo{"reset": s.formOf(t, tb, id, "Reset"), "delete": s.deleteForm(t, tb, id)}
	before, _ := s.client(t, id)

	for _, host := range []string{"127.0.0.1", "127.0.0.2"} {
		for name, f := range targets {
			t.Run(name+" from "+host, func(t *testing.T) {
				evil := attackerPage(t, host, f)
				tb := s.alice.tab(t)
				tb.open(evil)
				// The form submits itself; wait until the browser has left
				// the attacker's page (the UI answered).
				tb.waitURL(s.pub)
				time.Sleep(300 * time.Millisecond)
				c, ok := s.client(t, id)
				if !ok {
					t.Fatalf("a cross-origin %s post from %s deleted the client\n%s", name, host, tb.describe())
				}
				if !c.LastRotated.Equal(before.LastRotated) {
					t.Fatalf("a cross-origin %s post from %s reset the access token\n%s", name, host, tb.describe())
				}
				if len(tokensIn(tb.visibleText())) > 0 {
					t.Errorf("the answer to a cross-origin post shows a token\n%s", tb.describe())
				}
				if strings.TrimSpace(tb.text()) == "" {
					t.Errorf("the refusal is a blank page")
				}
				t.Logf("%s from %s: %.200s", name, host, strings.Join(strings.Fields(tb.text()), " "))
			})
		}
	}

	// The control: the same reset form, posted from the UI's own origin,
	// resets. So the posts above were refused for their origin, not for
	// a field the test got wrong.
	tb = s.alice.tab(t)
	tb.open(clientPath(id))
	tb.clickWait("the same reset form, same origin", submitCopyJS(tb, targets["reset"]))
	s.shownToken(t, tb, "the same-origin reset")
	if after, _ := s.client(t, id); after.LastRotated.Equal(before.LastRotated) {
		t.Errorf("the control (the same reset form from the UI's origin) did not reset the token:\n%s", tb.describe())
	}
}

// submitCopyJS adds a copy of f (action, fields) to the page and returns
// the selector of its submit button.
func submitCopyJS(tb *tab, f formInfo) string {
	tb.t.Helper()
	b, _ := json.Marshal(f)
	eval[chromedp.Void](tb, `(() => { const f = `+string(b)+`;
		const form = document.createElement('form');
		form.method = 'POST'; form.action = f.action;
		for (const [k, v] of f.fields) {
			const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; form.appendChild(i);
		}
		const btn = document.createElement('button'); btn.type = 'submit'; btn.id = 'it-copy'; btn.textContent = 'copy';
		form.appendChild(btn); document.body.appendChild(form); })()`)
	return "#it-copy"
}

// formOf is the form of the client's page whose button is labelled
// label.
func (s *suite) formOf(t *testing.T, tb *tab, id, label string) formInfo {
	t.Helper()
	tb.open(clientPath(id))
	for _, f := range tb.forms() {
		if strings.EqualFold(f.Method, "post") && strings.Contains(strings.ToLower(f.Labels), strings.ToLower(label)) {
			return f
		}
	}
	t.Fatalf("the client's page has no %q form: %+v", label, tb.forms())
	return formInfo{}
}

// deleteForm is the form that deletes (the one of the confirmation step
// when there is one).
func (s *suite) deleteForm(t *testing.T, tb *tab, id string) formInfo {
	t.Helper()
	tb.open(clientPath(id))
	tb.click("Delete")
	tb.waitText("Delete")
	var found *formInfo
	for _, f := range tb.forms() {
		if strings.EqualFold(f.Method, "post") && strings.Contains(strings.ToLower(f.Labels), "delete") {
			found = &f
		}
	}
	if found == nil {
		t.Fatalf("no delete confirmation form: %+v\n%s", tb.forms(), tb.describe())
	}
	if _, ok := s.client(t, id); !ok {
		t.Fatalf("the client was deleted before the confirmation")
	}
	return *found
}

var attackerTmpl = template.Must(template.New("").Parse(`<!doctype html>
<html><body><p>Free kittens!</p>
<form method="POST" action="{{.Action}}">{{range .Fields}}<input type="hidden" name="{{index . 0}}" value="{{index . 1}}">{{end}}</form>
<script>document.forms[0].submit()</script>
</body></html>`))

// attackerPage serves, on host (a loopback address), a page whose form
// posts f to the UI as soon as it loads; it returns the page's URL.
func attackerPage(t *testing.T, host string, f formInfo) string {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Skipf("cannot listen on %s: %v", host, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		attackerTmpl.Execute(w, f)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL + "/kittens"
}

// testInsufficientScopes: bob has only the login-identity:* role. The
// clients list (auth:list-clients) and creating a role
// (auth:create-role:…) answer InsufficientScopes with the expression he
// does not satisfy, a 403 page with text, not a blank one.
func (s *suite) testInsufficientScopes(t *testing.T) {
	s.bob.signIn(t)
	tb := s.bob.tab(t)
	if st := tb.status("/auth/clients"); st != http.StatusForbidden {
		t.Errorf("GET /auth/clients as bob: %d, want 403", st)
	}
	tb.waitText("InsufficientScopes", "auth:list-clients")
	tb.shot("insufficient-scopes")

	roleID := "it-ui/bob-role"
	tb.open("/auth/roles/create")
	if text := tb.text(); strings.Contains(text, "InsufficientScopes") {
		t.Logf("the create-role form itself is refused to bob: %.300s", text)
		return
	}
	tb.fill("Role ID", "roleId", roleID)
	tb.fill("Scopes", "scopes", "it:ui:x")
	tb.click("Preview")
	if !strings.Contains(tb.text(), "auth:create-role:") {
		tb.click("Create role")
	}
	tb.waitText("InsufficientScopes", "auth:create-role:"+roleID)
	tb.shot("insufficient-scopes-create-role")
	if _, ok := s.role(t, roleID); ok {
		t.Errorf("bob created role %s", roleID)
	}
}
