package harness

import (
	"bufio"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

// DevBanner reads the banner that `tcauth dev` prints on stdout, up to its
// last line ("Ctrl-C stops it"), and keeps draining stdout afterwards so
// that the process never blocks on a full pipe. It fails t when no banner
// comes within 60 s; stderr (may be nil) is what to show with the failure.
func DevBanner(t testing.TB, stdout io.Reader, stderr func() string) string {
	t.Helper()
	banner := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Ctrl-C stops it") {
				break
			}
		}
		banner <- b.String()
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case text := <-banner:
		return text
	case <-time.After(60 * time.Second):
		detail := ""
		if stderr != nil {
			detail = stderr()
		}
		t.Fatalf("no banner from tcauth dev within 60 s\n%s", detail)
		return ""
	}
}

// BannerField returns the first group of re in a banner, failing t when
// re does not match.
func BannerField(t testing.TB, banner, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("banner lacks %s:\n%s", re, banner)
	}
	return m[1]
}
