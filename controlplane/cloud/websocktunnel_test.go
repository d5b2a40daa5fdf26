package cloud

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// frozenNow is the tests' clock (2023-11-14T22:13:20Z).
var frozenNow = time.UnixMilli(1700000000000).UTC()

func newServiceAt(t *testing.T, cfg Config) *Service {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return frozenNow }
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// verifyLikeWebsocktunnel applies the checks of websocktunnel's proxy
// (taskcluster/taskcluster tools/websocktunnel/wsproxy/proxy.go,
// validateJWT) at time now: HS256 only, HMAC with the secret, then exp and
// nbf required and current, tid = the tunnel id the client registers,
// exp − nbf ≤ 31 days, aud = the proxy's audience when present.
// (websocktunnel compares exp − nbf in seconds with 31 days in
// nanoseconds, so its own limit never bites; this applies the intended
// one, which is stricter.)
func verifyLikeWebsocktunnel(token string, secret []byte, id, audience string, now time.Time) error {
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithoutClaimsValidation())
	tok, err := parser.Parse(token, func(tok *jwt.Token) (any, error) {
		if _, ok := tok.Method.(*jwt.SigningMethodHMAC); !ok {
			return nil, errors.New("unexpected signing method")
		}
		return secret, nil
	})
	if err != nil {
		return err
	}
	claims := tok.Claims.(jwt.MapClaims)
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil || !now.Before(exp.Time) {
		return errors.New("exp missing or passed")
	}
	nbf, err := claims.GetNotBefore()
	if err != nil || nbf == nil || now.Before(nbf.Time) {
		return errors.New("nbf missing or not yet")
	}
	if claims["tid"] != id {
		return errors.New("tid is not the tunnel id")
	}
	if exp.Sub(nbf.Time) > 31*24*time.Hour {
		return errors.New("valid for more than 31 days")
	}
	if aud, err := claims.GetAudience(); err != nil || len(aud) > 0 && (len(aud) != 1 || aud[0] != audience) {
		return errors.New("wrong audience")
	}
	return nil
}

func TestWebsocktunnelTokenVerifiesLikeWebsocktunnel(t *testing.T) {
	secret := "wst-secret-0123456789"
	s := newServiceAt(t, Config{Websocktunnel: &WebsocktunnelConfig{Secret: secret}})
	got, err := s.WebsocktunnelToken("static/taskcluster/worker-manager", "wst-audience", "worker-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.WstClient != "worker-1" || got.WstAudience != "wst-audience" || !got.Expires.Equal(frozenNow.Add(96*time.Hour)) {
		t.Fatalf("reply %+v", got)
	}
	// Exactly the reference's header and claims, in its order.
	parts := strings.Split(got.Token, ".")
	head, _ := base64.RawURLEncoding.DecodeString(parts[0])
	body, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if string(head) != `{"alg":"HS256","typ":"JWT"}` ||
		string(body) != `{"tid":"worker-1","aud":"wst-audience","sub":"static/taskcluster/worker-manager","iat":1700000000,"exp":1700345600,"nbf":1699999100,"iss":"taskcluster-auth"}` {
		t.Fatalf("header %s claims %s", head, body)
	}
	for _, c := range []struct {
		name, secret, id, aud string
		at                    time.Time
		ok                    bool
	}{
		{"at issue", secret, "worker-1", "wst-audience", frozenNow, true},
		{"clock 14 min behind", secret, "worker-1", "wst-audience", frozenNow.Add(-14 * time.Minute), true},
		{"just before exp", secret, "worker-1", "wst-audience", frozenNow.Add(96*time.Hour - time.Second), true},
		{"at exp", secret, "worker-1", "wst-audience", frozenNow.Add(96 * time.Hour), false},
		{"before nbf", secret, "worker-1", "wst-audience", frozenNow.Add(-16 * time.Minute), false},
		{"other secret", "other-secret", "worker-1", "wst-audience", frozenNow, false},
		{"other tunnel id", secret, "worker-2", "wst-audience", frozenNow, false},
		{"other audience", secret, "worker-1", "other-audience", frozenNow, false},
	} {
		err := verifyLikeWebsocktunnel(got.Token, []byte(c.secret), c.id, c.aud, c.at)
		if (err == nil) != c.ok {
			t.Errorf("%s: verification error %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

func TestWebsocktunnelConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("from-file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newServiceAt(t, Config{Websocktunnel: &WebsocktunnelConfig{SecretFile: file}})
	tok, err := s.WebsocktunnelToken("c", "aud", "w")
	if err != nil || verifyLikeWebsocktunnel(tok.Token, []byte("from-file-secret"), "w", "aud", frozenNow) != nil {
		t.Fatalf("secretFile (trimmed) not used: %v", err)
	}
	if _, err := newServiceAt(t, Config{}).WebsocktunnelToken("c", "aud", "w"); !errors.Is(err, ErrNotConfigured) ||
		!strings.Contains(Message(err), "websocktunnel") {
		t.Fatalf("unconfigured: %v", err)
	}
	for name, c := range map[string]WebsocktunnelConfig{
		"empty":   {},
		"both":    {Secret: "x", SecretFile: file},
		"absent":  {SecretFile: filepath.Join(dir, "absent")},
		"ws-only": {SecretFile: writeSecretFile(t, dir, "blank", " \n")},
	} {
		if _, err := New(Config{Websocktunnel: &c}); err == nil || strings.Contains(err.Error(), "from-file-secret") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func writeSecretFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
