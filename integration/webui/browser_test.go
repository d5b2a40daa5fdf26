package webui

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tcauth/tcauth/integration/harness"
)

// userBrowser is one person's browser: a browser context of the shared
// browser (its own cookies), signed in through the provider's login form
// at most once.
type userBrowser struct {
	user     harness.OIDCUser
	ctx      context.Context
	base     string // the UI's origin
	signedIn bool
}

func newUserBrowser(t *testing.T, u harness.OIDCUser, base string) *userBrowser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("a browser context for %s: %v", u.Username, err)
	}
	return &userBrowser{user: u, ctx: ctx, base: base}
}

// tab is one browser tab, closed at the end of the test.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
}

// tab opens a new tab in the user's browser context. A JavaScript
// dialog (confirm()) is accepted, as a person clicking OK would.
func (u *userBrowser) tab(t *testing.T) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(u.ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new tab: %v", err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return &tab{t: t, ctx: ctx, base: u.base}
}

// do runs actions with a timeout; a failure is fatal and says where the
// browser was and what it showed.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v\n%s", what, err, tb.describe())
	}
}

// get runs one action that returns a value, with a timeout.
func get[T any](tb *tab, timeout time.Duration, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, timeout)
	defer cancel()
	return chromedp.Run(ctx, a)
}

const bodyTextJS = `document.body ? document.body.innerText : ""`

// describe is the tab's URL and the start of its text, for failures.
func (tb *tab) describe() string {
	loc, _ := get(tb, 3*time.Second, chromedp.Location())
	text, _ := get(tb, 3*time.Second, chromedp.Evaluate[string](bodyTextJS))
	if len(text) > 2500 {
		text = text[:2500] + "…"
	}
	return fmt.Sprintf("at %s the page says:\n%s", loc, text)
}

// open navigates to path (relative to the UI's origin, or a full URL).
func (tb *tab) open(path string) {
	tb.t.Helper()
	u := path
	if strings.HasPrefix(path, "/") {
		u = tb.base + path
	}
	tb.do("open "+u, chromedp.Navigate(u), chromedp.WaitReady(chromedp.CSS("body")))
}

func (tb *tab) url() string {
	tb.t.Helper()
	loc, err := get(tb, 5*time.Second, chromedp.Location())
	if err != nil {
		tb.t.Fatalf("location: %v", err)
	}
	return loc
}

// text is what the page shows (document.body.innerText).
func (tb *tab) text() string {
	tb.t.Helper()
	return eval[string](tb, bodyTextJS)
}

// eval evaluates a JavaScript expression through the DevTools protocol
// (which the page's Content-Security-Policy does not govern).
func eval[T any](tb *tab, js string) T {
	tb.t.Helper()
	v, err := get(tb, 10*time.Second, chromedp.Evaluate[T](js))
	if err != nil {
		tb.t.Fatalf("evaluate %.200s: %v\n%s", js, err, tb.describe())
	}
	return v
}

// waitText waits until the page shows every one of want; a page reloaded
// by a form post or a redirect is read again each time.
func (tb *tab) waitText(want ...string) string {
	tb.t.Helper()
	var last string
	err := harness.Eventually(15*time.Second, func() error {
		var err error
		if last, err = get(tb, 3*time.Second, chromedp.Evaluate[string](bodyTextJS)); err != nil {
			return err
		}
		for _, w := range want {
			if !strings.Contains(last, w) {
				return fmt.Errorf("the page does not show %q", w)
			}
		}
		return nil
	})
	if err != nil {
		tb.t.Fatalf("%v\n%s", err, tb.describe())
	}
	return last
}

// waitURL waits until the tab's URL starts with prefix.
func (tb *tab) waitURL(prefix string) string {
	tb.t.Helper()
	var loc string
	err := harness.Eventually(20*time.Second, func() error {
		var err error
		if loc, err = get(tb, 3*time.Second, chromedp.Location()); err != nil {
			return err
		}
		if !strings.HasPrefix(loc, prefix) {
			return fmt.Errorf("the browser is at %s, want %s…", loc, prefix)
		}
		return nil
	})
	if err != nil {
		tb.t.Fatalf("%v\n%s", err, tb.describe())
	}
	return loc
}

// markJS finds the visible element a person would click for a label:
// a button, submit input or link whose text (or value, or aria-label) is
// the label, else contains it (case-insensitive); buttons first. It tags the element so
// that chromedp can click it with real mouse events, and returns the tag.
const markJS = `(() => {
  const want = %q.toLowerCase(), kinds = %q;
  const shown = [...document.querySelectorAll(kinds)].filter(e => e.offsetParent !== null || e.getClientRects().length);
  // Buttons before links: a form's "Expand" button, not the nav link.
  const els = shown.filter(e => e.tagName !== 'A').concat(shown.filter(e => e.tagName === 'A'));
  const label = e => ((e.innerText || e.value || '') + ' ' + (e.getAttribute('aria-label') || '')).trim().toLowerCase();
  const el = els.find(e => (e.innerText || e.value || '').trim().toLowerCase() === want) || els.find(e => label(e).includes(want));
  if (!el) return '';
  const id = 'it-' + Math.random().toString(36).slice(2);
  el.setAttribute('data-it', id);
  return id;
})()`

const clickables = `button, input[type=submit], input[type=button], a`

// find returns a selector for the clickable element labelled label, or "".
func (tb *tab) find(label, kinds string) string {
	tb.t.Helper()
	id := eval[string](tb, fmt.Sprintf(markJS, label, kinds))
	if id == "" {
		return ""
	}
	return `[data-it="` + id + `"]`
}

// click clicks the button or link labelled label.
func (tb *tab) click(label string) {
	tb.t.Helper()
	sel := tb.find(label, clickables)
	if sel == "" {
		tb.t.Fatalf("no button or link %q\n%s", label, tb.describe())
	}
	tb.clickWait(label, sel)
}

// clickWait clicks sel and, when the click navigates (a link, a form
// post), waits for the new page to load. A click that only runs script
// leaves the document in place: after a second without the old page
// starting to unload, the click is taken as done.
func (tb *tab) clickWait(what, sel string) {
	tb.t.Helper()
	mark := eval[string](tb, `(() => { const m = 'm' + Math.random().toString(36).slice(2);
		window.__itMark = m; window.__itLeaving = false;
		window.addEventListener('beforeunload', () => { window.__itLeaving = true; });
		return m; })()`)
	tb.do("click "+what, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	start := time.Now()
	for time.Since(start) < 20*time.Second {
		st, err := get(tb, 3*time.Second, chromedp.Evaluate[string](
			`(window.__itMark === '`+mark+`' ? (window.__itLeaving ? 'leaving' : 'same') : 'new') + ':' + document.readyState`))
		switch {
		case err != nil: // the old page is gone mid-evaluation: look again
		case strings.HasPrefix(st, "new:") && strings.HasSuffix(st, ":complete"):
			return
		case strings.HasPrefix(st, "same:") && time.Since(start) > time.Second:
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.t.Fatalf("click %s: the page it led to did not load\n%s", what, tb.describe())
}

// fieldJS finds a form control by the text of its <label> (what a person
// and a screen reader go by); failing that by name or id, reported as
// "no-label:" so the test can say the field is unlabelled.
const fieldJS = `(() => {
  const want = %q.toLowerCase();
  let el = null;
  if (want.startsWith('#')) {
    el = document.getElementById(want.slice(1));
    if (el && !el.labels.length) el = null;
  } else for (const l of document.querySelectorAll('label')) {
    if (l.innerText.trim().toLowerCase().startsWith(want) && l.control) { el = l.control; break; }
  }
  let how = '';
  if (!el) {
    el = document.querySelector('[name="' + %q + '"], #' + CSS.escape(%q));
    how = 'no-label:';
  }
  if (!el) return '';
  const id = 'it-' + Math.random().toString(36).slice(2);
  el.setAttribute('data-it', id);
  return how + id;
})()`

// field returns a selector for the control labelled label (else named
// name), or fails. A label "#id" names the control by id (for pages with
// several forms whose fields have the same label); it must still have a
// <label>.
func (tb *tab) field(label, name string) string {
	tb.t.Helper()
	id := eval[string](tb, fmt.Sprintf(fieldJS, label, name, name))
	if id == "" {
		tb.t.Fatalf("no form field labelled %q (or named %q)\n%s", label, name, tb.describe())
	}
	if rest, ok := strings.CutPrefix(id, "no-label:"); ok {
		tb.t.Errorf("accessibility: the field %q has no <label> %q", name, label)
		id = rest
	}
	return `[data-it="` + id + `"]`
}

// fill replaces the value of the field labelled label (else named name)
// and fires the input and change events a person's typing fires (the
// live previews listen to them).
func (tb *tab) fill(label, name, value string) {
	tb.t.Helper()
	sel := tb.field(label, name)
	tb.do("fill "+label, chromedp.SetValue(chromedp.CSS(sel), value),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const e = document.querySelector(%q);
			e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); return true })()`, sel)))
}

// value reads the current value of the field labelled label.
func (tb *tab) value(label, name string) string {
	tb.t.Helper()
	sel := tb.field(label, name)
	v, err := get(tb, 5*time.Second, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("read %s: %v", label, err)
	}
	return v
}

// shot saves a full-page screenshot as bin/screenshots/<name>.png.
func (tb *tab) shot(name string) {
	tb.t.Helper()
	dir, err := harness.ScreenshotDir()
	if err != nil {
		tb.t.Errorf("screenshot directory: %v", err)
		return
	}
	// Quality 100 makes chromedp ask for PNG.
	png, err := get(tb, 20*time.Second, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Errorf("screenshot %s: %v", name, err)
	}
}

// signIn signs the user in through the UI: the sign-in button for the
// zitadel strategy, the provider's own login form, back to the UI.
func (u *userBrowser) signIn(t *testing.T) {
	t.Helper()
	if u.signedIn {
		return
	}
	tb := u.tab(t)
	tb.open("/")
	tb.click("zitadel")
	tb.waitURL(zitadel.Issuer)
	tb.waitText("Username")
	tb.do("the provider's login form",
		chromedp.SendKeys(chromedp.CSS("#username"), u.user.Username),
		chromedp.SendKeys(chromedp.CSS("#password"), u.user.Password))
	tb.clickWait("the provider's Login button", `button[type=submit]`)
	tb.waitURL(u.base)
	u.signedIn = true
}

// visibleText is the page's text plus the values of its visible fields
// (a token shown for copying may sit in a read-only input).
func (tb *tab) visibleText() string {
	tb.t.Helper()
	return eval[string](tb, `document.body.innerText + "\n" +
		[...document.querySelectorAll('input:not([type=hidden]), textarea')].map(e => e.value).join("\n")`)
}

// status navigates to path and returns the HTTP status of the answer.
func (tb *tab) status(path string) int64 {
	tb.t.Helper()
	resp, err := get(tb, 20*time.Second, chromedp.NavigateResponse(tb.base+path))
	if err != nil {
		tb.t.Fatalf("open %s: %v", path, err)
	}
	return resp.Status
}

// formInfo is one form of a page as the browser would submit it.
type formInfo struct {
	Action string      `json:"action"`
	Method string      `json:"method"`
	Fields [][2]string `json:"fields"`
	Labels string      `json:"labels"` // the text of its submit buttons
}

// forms lists the page's forms.
func (tb *tab) forms() []formInfo {
	tb.t.Helper()
	return eval[[]formInfo](tb, `[...document.forms].map(f => ({action: f.action, method: f.method,
		fields: [...new FormData(f)].map(([k, v]) => [k, String(v)]),
		labels: [...f.querySelectorAll('button, input[type=submit]')].map(b => b.innerText || b.value).join(' | ')}))`)
}

// check clicks the label (of a checkbox or radio button) whose text
// starts with label.
func (tb *tab) check(label string) {
	tb.t.Helper()
	sel := tb.find(label, "label")
	if sel == "" {
		tb.t.Fatalf("no label %q\n%s", label, tb.describe())
	}
	tb.do("check "+label, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}
