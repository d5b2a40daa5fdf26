package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/scopeengine"
)

// TestLoginExamples loads every examples/login/*.yaml, and the annotated
// reference of docs/login.md, with loadLoginConfig (the --login-config
// loader, which refuses unknown keys) and then builds the login service
// from the result, which checks every value (strategy names, URLs, apps,
// secrets). So an example or the documented reference that stops parsing,
// or stops being a configuration a node would start with, fails CI.
func TestLoginExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "login", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("examples/login/*.yaml: found %v, want dev-login.yaml and production-login.yaml at least", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { checkLoginExample(t, f) })
	}
	t.Run("docs/login.md reference", func(t *testing.T) {
		doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "login.md"))
		if err != nil {
			t.Fatal(err)
		}
		ref, ok := referenceYAML(string(doc))
		if !ok {
			t.Fatal("docs/login.md: no ```yaml block under the heading \"## The `--login-config` file\"")
		}
		p := filepath.Join(t.TempDir(), "reference.yaml")
		if err := os.WriteFile(p, []byte(ref), 0o600); err != nil {
			t.Fatal(err)
		}
		checkLoginExample(t, p)
	})
}

// checkLoginExample loads path and builds the login service from it.
// Client secret files of an example name the deployment's paths
// (/etc/tcauth/...), absent here: each absent one is replaced by a file
// this test writes, so the check covers everything else. The loader and
// login.New are not weakened: a secret file that is missing in a real
// start still stops the node (TestLoginExampleMissingSecretFile).
func checkLoginExample(t *testing.T, path string) {
	t.Helper()
	lc, err := loadLoginConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := *lc
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://127.0.0.1:8080" // startNode's default: the root URL
	}
	cfg.Strategies = append([]login.StrategyConfig(nil), lc.Strategies...)
	for i := range cfg.Strategies {
		sc := &cfg.Strategies[i]
		if sc.ClientSecretFile == "" {
			continue
		}
		if !filepath.IsAbs(sc.ClientSecretFile) {
			t.Errorf("strategy %s: clientSecretFile %q: examples use absolute paths (a relative one depends on the working directory)", sc.Name, sc.ClientSecretFile)
		}
		if _, err := os.Stat(sc.ClientSecretFile); errors.Is(err, os.ErrNotExist) {
			stand := filepath.Join(t.TempDir(), "client-secret")
			if err := os.WriteFile(stand, []byte("example-secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			sc.ClientSecretFile = stand
		}
	}
	cfg.Sealer, cfg.Logger = noSealer{}, slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := login.New(cfg, noBackend{})
	if err != nil {
		t.Fatalf("%s does not configure a login service: %v", path, err)
	}
	if svc.Issuer() == "" {
		t.Error("no issuer after defaults")
	}
}

// TestLoginExampleMissingSecretFile: the substitution above is the test's
// only; a configuration naming an absent secret file does not start.
func TestLoginExampleMissingSecretFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "login.yaml")
	body := "publicUrl: https://tc.example.com\nstrategies:\n  - name: github\n    type: github\n    clientId: x\n    clientSecretFile: " +
		filepath.Join(t.TempDir(), "absent") + "\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	lc, err := loadLoginConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	lc.Sealer = noSealer{}
	if _, err := login.New(*lc, noBackend{}); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("login.New with an absent clientSecretFile: %v, want an error naming the file", err)
	}
}

// referenceYAML is the first ```yaml block after the configuration
// reference's heading.
func referenceYAML(doc string) (string, bool) {
	_, rest, ok := strings.Cut(doc, "\n## The `--login-config` file\n")
	if !ok {
		return "", false
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	if !ok {
		return "", false
	}
	block, _, ok := strings.Cut(rest, "\n```")
	return block + "\n", ok
}

// noBackend and noSealer satisfy login.New, which only keeps them: nothing
// here signs anybody in, so they are never called.
type noBackend struct{}

var errNoBackend = errors.New("no backend in this test")

func (noBackend) Apply(context.Context, login.Command) (login.Result, error) {
	return login.Result{}, errNoBackend
}
func (noBackend) Record(string, string) (login.Record, bool, error) {
	return login.Record{}, false, errNoBackend
}
func (noBackend) Sync(context.Context) error { return errNoBackend }
func (noBackend) CreateClient(context.Context, login.ClientSpec) (login.Client, string, error) {
	return login.Client{}, "", errNoBackend
}
func (noBackend) DisableClient(context.Context, string, string) error { return errNoBackend }
func (noBackend) Client(string) (login.Client, bool)                  { return login.Client{}, false }
func (noBackend) ListClients(string) []login.Client                   { return nil }
func (noBackend) AccessToken(string) (string, bool, error)            { return "", false, errNoBackend }
func (noBackend) Resolver() *scopeengine.Resolver                     { return nil }
func (noBackend) IsLeader() bool                                      { return false }

type noSealer struct{}

func (noSealer) Seal(string, []byte) ([]byte, error) { return nil, errNoBackend }
func (noSealer) Open(string, []byte) ([]byte, error) { return nil, errNoBackend }
