package main

import (
	"path/filepath"
	"testing"
	"time"
)

func TestLoadCloudConfig(t *testing.T) {
	dir, write := tempWriter(t)
	secret := write("wst-secret", "s3cr3t-websocktunnel\n")
	token := write("sentry-token", "sntrys_token\n")
	good := write("good.yaml", `
websocktunnel:
  secretFile: `+secret+`
sentry:
  hostname: sentry.example.com
  organization: tc
  initialTeam: infra
  authTokenFile: `+token+`
  keyPrefix: tc-auth
  purgeInterval: 6h
`)
	cc, err := loadCloudConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if cc.Websocktunnel == nil || cc.Websocktunnel.SecretFile != secret || cc.Sentry == nil ||
		time.Duration(cc.Sentry.PurgeInterval) != 6*time.Hour || cc.Sentry.InitialTeam != "infra" || cc.GCP != nil {
		t.Fatalf("decoded %+v", cc)
	}
	checkConfigLoader(t, loadCloudConfig, dir, map[string]string{
		"typo.yaml":            "websocktunnel:\n  secretFil: /x\n",
		"unknown-section.yaml": "sentri: {}\n",
		"empty.yaml":           "",
		"bad-duration.yaml":    "sentry:\n  purgeInterval: daily\n",
		"not-a-mapping.yaml":   "- a\n",
		"missing-file.yaml":    "websocktunnel:\n  secretFile: " + filepath.Join(dir, "absent") + "\n",
		"incomplete.yaml":      "sentry:\n  hostname: sentry.io\n",
		"gcp-not-a-key.yaml":   "gcp:\n  allowedProjects:\n    p:\n      credentials: '-----BEGIN PRIVATE KEY----- xyz'\n",
	}, "PRIVATE KEY")
}
