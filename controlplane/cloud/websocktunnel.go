package cloud

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// WebsocktunnelConfig configures websocktunnelToken: the secret the
// websocktunnel proxy verifies its clients' JWTs with (its JWTSecretA or
// JWTSecretB). Exactly one of Secret and SecretFile (preferred: the secret
// stays out of the configuration file).
type WebsocktunnelConfig struct {
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secretFile"`
}

// Token lifetimes of websocktunnelToken, as the reference's: valid from
// 15 min before issue (clock skew) to 96 h after. websocktunnel refuses a
// token whose exp − nbf exceeds 31 days.
const (
	WebsocktunnelLifetime  = 96 * time.Hour
	WebsocktunnelNotBefore = 15 * time.Minute
	wstIssuer              = "taskcluster-auth"
)

type wstBackend struct{ secret []byte }

// WebsocktunnelToken is the reply of websocktunnelToken.
type WebsocktunnelToken struct {
	WstClient   string
	WstAudience string
	Token       string
	Expires     time.Time
}

func (s *Service) checkWebsocktunnel() error {
	c := s.cfg.Websocktunnel
	if c == nil {
		return nil
	}
	secret, err := secretValue("websocktunnel.secret", c.Secret, c.SecretFile)
	if err != nil {
		return err
	}
	if secret == "" {
		// An explicitly empty section is a mistake, not "unconfigured".
		return errors.New("cloud: websocktunnel: secret or secretFile is required")
	}
	s.wst = &wstBackend{secret: []byte(secret)}
	return nil
}

// WebsocktunnelToken signs an HS256 JWT for wstClient at wstAudience on
// behalf of the caller clientID (the `sub` claim, as the reference). The
// claims are emitted in the reference's order: tid, aud, sub, iat, exp,
// nbf, iss. ErrNotConfigured without a websocktunnel section.
func (s *Service) WebsocktunnelToken(clientID, wstAudience, wstClient string) (WebsocktunnelToken, error) {
	if s.wst == nil {
		return WebsocktunnelToken{}, newErr(ErrNotConfigured, "websocktunnel is not configured in this deployment (no websocktunnel secret)")
	}
	iat := s.cfg.Now().Unix()
	exp := iat + int64(WebsocktunnelLifetime/time.Second)
	claims := struct {
		Tid string `json:"tid"`
		Aud string `json:"aud"`
		Sub string `json:"sub"`
		Iat int64  `json:"iat"`
		Exp int64  `json:"exp"`
		Nbf int64  `json:"nbf"`
		Iss string `json:"iss"`
	}{wstClient, wstAudience, clientID, iat, exp, iat - int64(WebsocktunnelNotBefore/time.Second), wstIssuer}
	payload, err := json.Marshal(claims)
	if err != nil {
		return WebsocktunnelToken{}, err
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload)
	mac := hmac.New(sha256.New, s.wst.secret)
	mac.Write([]byte(signing))
	token := signing + "." + enc.EncodeToString(mac.Sum(nil))
	return WebsocktunnelToken{WstClient: wstClient, WstAudience: wstAudience, Token: token, Expires: time.Unix(exp, 0).UTC()}, nil
}

// secretValue returns the inline value or the trimmed content of file
// (preferred); both set is refused. name is the YAML key for errors; the
// value itself never appears in one.
func secretValue(name, inline, file string) (string, error) {
	if inline != "" && file != "" {
		return "", fmt.Errorf("cloud: %s: give either the value or the File key, not both", name)
	}
	if file == "" {
		return inline, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("cloud: %sFile: %w", name, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("cloud: %sFile %s is empty", name, file)
	}
	return v, nil
}
