package main

import (
	"strings"
	"testing"
	"time"
)

func TestLoadLoginConfig(t *testing.T) {
	dir, write := tempWriter(t)
	good := write("good.yaml", `
publicUrl: https://tc.example.com
sessionLifetime: 48h
maxSessionsPerIdentity: 5
strategies:
  - name: corp
    type: oidc
    issuer: https://idp.example.com
    clientId: tcauth
    groupsClaim: groups
    bearer: {audience: tc, requiredScope: taskcluster-credentials}
registeredApps:
  - clientId: tool
    scope: ["queue:*"]
    redirectUri: ["https://tool.example.com/cb"]
`)
	lc, err := loadLoginConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if lc.PublicURL != "https://tc.example.com" || time.Duration(lc.SessionLifetime) != 48*time.Hour || lc.MaxSessionsPerIdentity != 5 ||
		len(lc.Strategies) != 1 || lc.Strategies[0].Bearer == nil || lc.Strategies[0].Bearer.Audience != "tc" ||
		len(lc.Apps) != 1 || lc.Apps[0].RedirectURIs[0] != "https://tool.example.com/cb" {
		t.Fatalf("decoded %+v", lc)
	}
	checkConfigLoader(t, loadLoginConfig, dir, map[string]string{
		"typo.yaml":          "publicUrl: https://x\nsesionLifetime: 1h\n",
		"nested-typo.yaml":   "strategies:\n  - type: oidc\n    clientSecretFil: /x\n",
		"empty.yaml":         "",
		"bad-duration.yaml":  "sessionLifetime: a week\n",
		"not-a-mapping.yaml": "- a\n",
	}, "")
}

// Duration keys take Taskcluster's fromNow expressions as well as Go
// durations (protocol.Duration); a bad one stops the start naming the
// file and the value.
func TestLoginConfigDurations(t *testing.T) {
	_, write := tempWriter(t)
	lc, err := loadLoginConfig(write("days.yaml",
		"publicUrl: https://tc.example.com\nsessionLifetime: 7 days\nstartOffset: 15 min\nscanInterval: 90m\npurgeInterval: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(lc.SessionLifetime) != 7*24*time.Hour || time.Duration(lc.StartOffset) != 15*time.Minute ||
		time.Duration(lc.ScanInterval) != 90*time.Minute || lc.PurgeInterval != 0 {
		t.Fatalf("decoded %+v", lc)
	}
	for body, want := range map[string]string{
		"publicUrl: https://tc.example.com\nsessionLifetime: 7 dayz\n": `"7 dayz" is not a duration`,
		"publicUrl: https://tc.example.com\nsessionLifetime: 5\n":      `"5" is not a duration: a number needs a unit`,
		"publicUrl: https://tc.example.com\nsessionLifetime: [7d]\n":   "line 2",
	} {
		p := write("bad.yaml", body)
		_, err := loadLoginConfig(p)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v (want an input error naming the file, with %q)", body, err, want)
		}
	}
}
