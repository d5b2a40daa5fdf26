package cloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"
	"google.golang.org/api/googleapi"
	iamcredentials "google.golang.org/api/iamcredentials/v1"
	"google.golang.org/api/option"
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
	projects map[string]*gcpProject
}

type gcpProject struct {
	allowed []string
	// iam is Google's IAM Credentials client, signed in as the project's
	// key: its HTTP client adds tcauth's own token (OAuth 2.0 JWT bearer
	// grant with the key, RFC 7523; cached until it expires). Given the
	// client, the library looks up no Application Default Credentials.
	iam *iamcredentials.Service
}

// gcpAnswerLimit caps how much of an IAM Credentials answer is read.
const gcpAnswerLimit = 1 << 20

// errGCPOwnToken replaces the error of fetching tcauth's own token:
// oauth2's may carry the token endpoint's body.
var errGCPOwnToken = errors.New("gcp: getting tcauth's own access token failed")

type gcpOwnToken struct{ ts oauth2.TokenSource }

func (o gcpOwnToken) Token() (*oauth2.Token, error) {
	t, err := o.ts.Token()
	if err != nil {
		return nil, errGCPOwnToken
	}
	return t, nil
}

// gcpLimitAnswer reads at most gcpAnswerLimit bytes of each answer body.
type gcpLimitAnswer struct{ base http.RoundTripper }

func (l gcpLimitAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(r)
	if err == nil {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(resp.Body, gcpAnswerLimit), resp.Body}
	}
	return resp, err
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
	b := &gcpBackend{projects: map[string]*gcpProject{}}
	endpoint := c.Endpoint
	if endpoint == "" {
		endpoint = DefaultGCPEndpoint
	}
	if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("cloud: gcp.endpoint %q is not an http(s) URL", endpoint)
	}
	// A full URL, which the library takes verbatim; the slash keeps a
	// path prefix when the method's path is resolved against it.
	endpoint = strings.TrimRight(endpoint, "/") + "/"
	if len(c.AllowedProjects) == 0 {
		return errors.New("cloud: gcp.allowedProjects is empty")
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, s.cfg.HTTPClient)
	base := s.cfg.HTTPClient.Transport
	if base == nil {
		base = http.DefaultTransport
	}
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
		// A copy of the configured client (its timeout, redirects), not
		// oauth2.NewClient's, which keeps only the transport.
		hc := *s.cfg.HTTPClient
		hc.Transport = &oauth2.Transport{Source: gcpOwnToken{jc.TokenSource(ctx)}, Base: gcpLimitAnswer{base}}
		iam, err := iamcredentials.NewService(context.Background(), option.WithHTTPClient(&hc),
			option.WithEndpoint(endpoint),
			// The library's debug log (GOOGLE_SDK_GO_LOGGING_LEVEL) would
			// record the minted tokens.
			option.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			return fmt.Errorf("cloud: gcp: %v", err)
		}
		b.projects[id] = &gcpProject{allowed: slices.Clone(p.AllowedServiceAccounts), iam: iam}
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
	return generateAccessToken(ctx, p.iam, serviceAccount)
}

// generateAccessToken is POST v1/projects/-/serviceAccounts/<sa>:generateAccessToken
// ("-": Google requires the wildcard project) with {scope, lifetime}.
func generateAccessToken(ctx context.Context, iam *iamcredentials.Service, serviceAccount string) (GCPToken, error) {
	req := &iamcredentials.GenerateAccessTokenRequest{Scope: []string{gcpScope}, Lifetime: gcpLifetime}
	resp, err := iam.Projects.ServiceAccounts.GenerateAccessToken("projects/-/serviceAccounts/"+serviceAccount, req).
		Context(ctx).Do()
	var ge *googleapi.Error
	switch {
	case errors.Is(err, errGCPOwnToken):
		return GCPToken{}, newErr(ErrUpstream, "%v", errGCPOwnToken)
	case errors.As(err, &ge):
		return GCPToken{}, gcpError(ge.Code, []byte(ge.Body))
	case err != nil:
		return GCPToken{}, newErr(ErrUpstream, "gcp: generateAccessToken: %v", redactURLError(err))
	case resp.HTTPStatusCode != http.StatusOK:
		return GCPToken{}, newErr(ErrUpstream, "gcp: generateAccessToken answered %d", resp.HTTPStatusCode)
	case resp.AccessToken == "" || resp.ExpireTime == "":
		return GCPToken{}, newErr(ErrUpstream, "gcp: generateAccessToken answered 200 without accessToken and expireTime")
	}
	return GCPToken{AccessToken: resp.AccessToken, ExpireTime: resp.ExpireTime}, nil
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
