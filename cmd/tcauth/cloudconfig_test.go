package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadCloudConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
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
		cc.Sentry.PurgeInterval != 6*time.Hour || cc.Sentry.InitialTeam != "infra" || cc.GCP != nil {
		t.Fatalf("decoded %+v", cc)
	}
	if cc, err := loadCloudConfig(""); cc != nil || err != nil {
		t.Fatalf("no file: %v %v", cc, err)
	}
	for name, body := range map[string]string{
		"typo.yaml":            "websocktunnel:\n  secretFil: /x\n",
		"unknown-section.yaml": "sentri: {}\n",
		"empty.yaml":           "",
		"bad-duration.yaml":    "sentry:\n  purgeInterval: daily\n",
		"not-a-mapping.yaml":   "- a\n",
		"missing-file.yaml":    "websocktunnel:\n  secretFile: " + filepath.Join(dir, "absent") + "\n",
		"incomplete.yaml":      "sentry:\n  hostname: sentry.io\n",
		"gcp-not-a-key.yaml":   "gcp:\n  allowedProjects:\n    p:\n      credentials: '-----BEGIN PRIVATE KEY----- xyz'\n",
	} {
		p := write(name, body)
		_, err := loadCloudConfig(p)
		if err == nil || !strings.Contains(err.Error(), p) || exitCode(err) != 2 || strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("%s: %v (want an input error naming the file, without secrets)", name, err)
		}
	}
	if _, err := loadCloudConfig(filepath.Join(dir, "absent.yaml")); err == nil || exitCode(err) != 2 {
		t.Errorf("absent file: %v", err)
	}
}
