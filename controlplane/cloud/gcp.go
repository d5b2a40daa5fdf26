package cloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"
)

// GCPConfig configures gcpCredentials, in the shape of the reference's
// GCP_CREDENTIALS_ALLOWED_PROJECTS: per project id, the key of a service
// account that holds "Service Account Token Creator" on the allowed
// service accounts, and the accounts callers may get tokens for.
// (The reference accepts a single project; tcauth accepts several.)
type GCPConfig struct {
	AllowedProjects map[string]GCPProject `yaml:"allowedProjects"`
	// Endpoint is the IAM Credentials API's base URL. Default
	// DefaultGCPEndpoint.
	Endpoint string `yaml:"endpoint"`
}

// GCPProject is one allowed project.
type GCPProject struct {
	// Credentials is the service account key (the JSON file Google issues,
	// as a string); CredentialsFile names that file (preferred).
	Credentials            string   `yaml:"credentials"`
	CredentialsFile        string   `yaml:"credentialsFile"`
	AllowedServiceAccounts []string `yaml:"allowedServiceAccounts"`
}

// DefaultGCPEndpoint is Google's IAM Credentials API.
const DefaultGCPEndpoint = "https://iamcredentials.googleapis.com/"

// GCP token request, as the reference's: the cloud-platform scope for an hour.
const (
	gcpScope    = "https://www.googleapis.com/auth/cloud-platform"
	gcpLifetime = "3600s"
	// gcpTokenURL is used when a key names no token_uri.
	gcpTokenURL = "https://oauth2.googleapis.com/token"
)

type gcpBackend struct {
	endpoint string
	projects map[string]*gcpProject
}

type gcpProject struct {
	allowed []string
	// token authenticates tcauth's own calls (OAuth 2.0 JWT bearer grant
	// with the configured key, RFC 7523); cached until it expires.
	token oauth2.TokenSource
}

// GCPToken is the reply of gcpCredentials: IAM Credentials' own answer.
type GCPToken struct {
	AccessToken string `json:"accessToken"`
	ExpireTime  string `json:"expireTime"`
}

// serviceAccountKey is the part of Google's service account key file
// tcauth uses.
type serviceAccountKey struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

func (s *Service) checkGCP() error {
	c := s.cfg.GCP
	if c == nil {
		return nil
	}
	b := &gcpBackend{endpoint: c.Endpoint, projects: map[string]*gcpProject{}}
	if b.endpoint == "" {
		b.endpoint = DefaultGCPEndpoint
	}
	if u, err := url.Parse(b.endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("cloud: gcp.endpoint %q is not an http(s) URL", b.endpoint)
	}
	b.endpoint = strings.TrimRight(b.endpoint, "/") + "/"
	if len(c.AllowedProjects) == 0 {
		return errors.New("cloud: gcp.allowedProjects is empty")
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, s.cfg.HTTPClient)
	for id, p := range c.AllowedProjects {
		name := "gcp.allowedProjects." + id + ".credentials"
		raw, err := secretValue(name, p.Credentials, p.CredentialsFile)
		if err != nil {
			return err
		}
		var key serviceAccountKey
		if err := json.Unmarshal([]byte(raw), &key); err != nil {
			// Not the JSON error itself: it may quote the key's content.
			return fmt.Errorf("cloud: %s is not a service account key (JSON)", name)
		}
		if key.ClientEmail == "" || key.PrivateKey == "" {
			return fmt.Errorf("cloud: %s lacks client_email or private_key", name)
		}
		if key.TokenURI == "" {
			key.TokenURI = gcpTokenURL
		}
		jc := &jwt.Config{Email: key.ClientEmail, PrivateKey: []byte(key.PrivateKey), PrivateKeyID: key.PrivateKeyID,
			Scopes: []string{gcpScope}, TokenURL: key.TokenURI}
		b.projects[id] = &gcpProject{allowed: slices.Clone(p.AllowedServiceAccounts), token: jc.TokenSource(ctx)}
	}
	s.gcp = b
	return nil
}

// GCPCredentials returns an access token for serviceAccount of projectID
// from IAM Credentials generateAccessToken. Errors, as the reference's:
// ErrNotConfigured (no gcp section) and ErrNotFound (project not
// configured, or Google refused: its message is kept) → 404; ErrInput
// (service account not allowed) → 400; ErrUpstream → 5xx.
func (s *Service) GCPCredentials(ctx context.Context, projectID, serviceAccount string) (GCPToken, error) {
	if s.gcp == nil {
		return GCPToken{}, newErr(ErrNotConfigured, "The projectId %s is not configured", projectID)
	}
	p, ok := s.gcp.projects[projectID]
	if !ok {
		return GCPToken{}, newErr(ErrNotFound, "The projectId %s is not configured", projectID)
	}
	if !slices.Contains(p.allowed, serviceAccount) {
		return GCPToken{}, newErr(ErrInput, "The service account %s isn't allowed", serviceAccount)
	}
	own, err := p.token.Token()
	if err != nil {
		// oauth2's error may carry the token endpoint's body; keep it out.
		return GCPToken{}, newErr(ErrUpstream, "gcp: getting tcauth's own access token failed")
	}
	return s.generateAccessToken(ctx, own.AccessToken, serviceAccount)
}

// generateAccessToken is POST v1/projects/-/serviceAccounts/<sa>:generateAccessToken
// ("-": Google requires the wildcard project) with {scope, lifetime}.
func (s *Service) generateAccessToken(ctx context.Context, bearer, serviceAccount string) (GCPToken, error) {
	body, _ := json.Marshal(map[string]any{"scope": []string{gcpScope}, "lifetime": gcpLifetime})
	u := s.gcp.endpoint + "v1/projects/-/serviceAccounts/" + url.PathEscape(serviceAccount) + ":generateAccessToken"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return GCPToken{}, newErr(ErrUpstream, "gcp: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return GCPToken{}, newErr(ErrUpstream, "gcp: generateAccessToken: %v", redactURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return GCPToken{}, newErr(ErrUpstream, "gcp: generateAccessToken: reading the answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return GCPToken{}, gcpError(resp.StatusCode, b)
	}
	var tok GCPToken
	if err := json.Unmarshal(b, &tok); err != nil || tok.AccessToken == "" || tok.ExpireTime == "" {
		return GCPToken{}, newErr(ErrUpstream, "gcp: generateAccessToken answered 200 without accessToken and expireTime")
	}
	return tok, nil
}

// gcpError maps a Google error answer ({"error": {code, message, status}}):
// a 4xx means Google refused this account (absent, no permission), which
// the reference reports as 404 with Google's message; anything else is the
// provider failing.
func gcpError(status int, body []byte) error {
	var e struct {
		Error struct {
			Message string `json:"message"`
			Status  string `json:"status"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	msg := e.Error.Message
	if len(msg) > 500 {
		msg = msg[:500]
	}
	if status >= 400 && status < 500 && status != http.StatusTooManyRequests && msg != "" {
		return newErr(ErrNotFound, "%s", msg)
	}
	return newErr(ErrUpstream, "gcp: generateAccessToken answered %d %s", status, e.Error.Status)
}

// redactURLError drops the URL from a transport error (it names only the
// endpoint, but keeping errors free of request details is the rule).
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
