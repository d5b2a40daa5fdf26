package webui

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tcauth/tcauth/integration/harness"
)

// The example OpenID provider and the browser run once per test binary.
// The provider's redirect URIs are fixed when it starts, so the node's
// addresses are reserved first.
var (
	zitadel       *harness.OIDCExample
	zitadelReason string
	// nodeAddrs are the node's HTTP and Raft addresses.
	nodeAddrs []string

	// browserCtx is the one browser (a chromedp context whose first tab
	// is open); users get browser contexts under it (userBrowser).
	browserCtx    context.Context
	browserReason string
)

// Users of the example provider. alice administers (her role grants
// auth:* and the test's own scopes); bob has only what every signed-in
// user has (the login-identity:* role), so he may manage clients under
// his identity and nothing else.
var (
	alice = harness.OIDCUser{ID: "u-alice", Username: "alice", Password: "alice-pass-1", FirstName: "Alice", LastName: "Admin", Email: "alice@example.com", EmailVerified: true}
	bob   = harness.OIDCUser{ID: "u-bob", Username: "bob", Password: "bob-pass-2", FirstName: "Bob", LastName: "Plain", Email: "bob@example.com", EmailVerified: true}
	// carol may list and read every client, and manage only her own.
	carol = harness.OIDCUser{ID: "u-carol", Username: "carol", Password: "carol-pass-3", FirstName: "Carol", LastName: "Reader", Email: "carol@example.com", EmailVerified: true}
)

func identityOf(u harness.OIDCUser) string { return "zitadel/" + u.ID }

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if nodeAddrs, err = harness.ReserveAddrs(3); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stopBrowser := startBrowser()
	defer stopBrowser()
	_, port, _ := net.SplitHostPort(nodeAddrs[2])
	redirects := []string{"http://" + nodeAddrs[0] + "/login/zitadel/callback"}
	return harness.WithOIDCExample(port, []harness.OIDCUser{alice, bob, carol}, redirects, func(o *harness.OIDCExample, reason string) int {
		zitadel, zitadelReason = o, reason
		return m.Run()
	})
}

// startBrowser starts the one headless Chromium of the package (or sets
// browserReason) and returns what stops it.
func startBrowser() (stop func()) {
	bin, reason := harness.BrowserBin()
	if bin == "" {
		browserReason = reason
		return func() {}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		// The tests run as root in a container: Chromium's sandbox
		// needs user namespaces it may not have there.
		chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	// The first Do starts the browser and ties its life to the context
	// it is given: no timeout here (chromedp's docs, example 21).
	if err := chromedp.Do(ctx); err != nil {
		cancelCtx()
		cancelAlloc()
		browserReason = fmt.Sprintf("starting %s: %v", bin, err)
		return func() {}
	}
	browserCtx = ctx
	return func() { cancelCtx(); cancelAlloc() }
}

// needPeers skips (or, under TCAUTH_REQUIRE_PEERS=1, fails) without the
// example OpenID provider or the browser.
func needPeers(t *testing.T) {
	t.Helper()
	harness.NeedPeer(t, zitadelReason)
	harness.NeedPeer(t, browserReason)
}

func randToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
