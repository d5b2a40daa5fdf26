package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// BrowserEnv names the environment variable holding the path of the
// headless Chromium the web UI's browser tests drive (with chromedp).
// `make deps-browser` installs Debian's chromium-headless-shell and the
// Makefile's test targets set the variable.
const BrowserEnv = "TCAUTH_BROWSER"

// browserDefaults are tried, in order, when $BrowserEnv is unset: Debian's
// headless shell, then the full Chromium. chromedp's own lookup does not
// know the headless-shell name, so the tests always pass a path.
var browserDefaults = []string{"/usr/bin/chromium-headless-shell", "/usr/bin/chromium"}

// BrowserBin returns the browser's binary: $BrowserEnv, else the first of
// browserDefaults that exists. reason says why there is none when path
// is "".
func BrowserBin() (path, reason string) {
	candidates := browserDefaults
	if p := os.Getenv(BrowserEnv); p != "" {
		candidates = []string{p}
	}
	for _, p := range candidates {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, ""
		}
	}
	return "", fmt.Sprintf("no headless Chromium at %v (run `make deps-browser`, or set %s)", candidates, BrowserEnv)
}

// ScreenshotDir is bin/screenshots in this checkout, where the browser
// tests save a picture of every page they check, for a person to look at
// (bin/ is not tracked). It is created if missing.
func ScreenshotDir() (string, error) {
	_, here, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(here), "..", "..", "bin", "screenshots")
	return dir, os.MkdirAll(dir, 0o755)
}
