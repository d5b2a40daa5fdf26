package main

import (
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
	if lc.PublicURL != "https://tc.example.com" || lc.SessionLifetime != 48*time.Hour || lc.MaxSessionsPerIdentity != 5 ||
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
