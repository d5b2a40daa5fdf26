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
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// SentryConfig configures sentryDSN through Sentry's web API (/api/0/),
// as the reference's sentry section.
type SentryConfig struct {
	// Hostname of the Sentry server ("sentry.io" → https://sentry.io/), or
	// a base URL with scheme (self-hosted, tests).
	Hostname     string `yaml:"hostname"`
	Organization string `yaml:"organization"`
	// InitialTeam owns the projects sentryDSN creates when missing.
	InitialTeam string `yaml:"initialTeam"`
	// AuthToken is an API token with project:write (keys, projects);
	// AuthTokenFile names a file holding it (preferred).
	AuthToken     string `yaml:"authToken"`
	AuthTokenFile string `yaml:"authTokenFile"`
	// KeyPrefix starts the names of the keys tcauth manages:
	// "<keyPrefix> managed (expires-at:<ISO time>)". Default DefaultSentryKeyPrefix.
	KeyPrefix string `yaml:"keyPrefix"`
	// PurgeInterval is how often the leader deletes expired managed keys.
	// Default DefaultSentryPurgeInterval. A Go duration or a fromNow
	// expression ("6h", "1 day").
	PurgeInterval protocol.Duration `yaml:"purgeInterval"`
}

// Sentry defaults and the reference's key rotation: a key is handed out
// while it has more than 25 h left; a new one is valid 48 h.
const (
	DefaultSentryKeyPrefix     = "tcauth"
	DefaultSentryPurgeInterval = time.Hour
	sentryMinRemaining         = 25 * time.Hour
	sentryKeyLifetime          = 48 * time.Hour
	sentryMaxPages             = 100
)

type sentryBackend struct {
	cfg   SentryConfig
	base  string // ends with /api/0/
	token string
	label *regexp.Regexp

	mu    sync.Mutex
	cache map[string]SentryDSN
	locks map[string]*sync.Mutex // one refresh per project at a time
}

// SentryDSN is the reply of sentryDSN.
type SentryDSN struct {
	Project string
	Secret  string // the DSN with the secret key (dsn.secret)
	Public  string // dsn.public
	Expires time.Time
}

func (s *Service) checkSentry() error {
	c := s.cfg.Sentry
	if c == nil {
		return nil
	}
	if c.Hostname == "" || c.Organization == "" || c.InitialTeam == "" {
		return errors.New("cloud: sentry needs hostname, organization and initialTeam")
	}
	tok, err := secretValue("sentry.authToken", c.AuthToken, c.AuthTokenFile)
	if err != nil {
		return err
	}
	if tok == "" {
		return errors.New("cloud: sentry needs authToken or authTokenFile")
	}
	base := c.Hostname
	if !strings.Contains(base, "://") {
		base = "https://" + base
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("cloud: sentry.hostname %q is neither a host name nor an http(s) URL", c.Hostname)
	}
	cfg := *c
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultSentryKeyPrefix
	}
	if cfg.PurgeInterval <= 0 {
		cfg.PurgeInterval = protocol.Duration(DefaultSentryPurgeInterval)
	}
	s.sentry = &sentryBackend{cfg: cfg, base: strings.TrimRight(base, "/") + "/api/0/", token: tok,
		label: regexp.MustCompile(`^` + regexp.QuoteMeta(cfg.KeyPrefix) + ` managed \(expires-at:([0-9TZ:.-]+)\)$`),
		cache: map[string]SentryDSN{}, locks: map[string]*sync.Mutex{}}
	return nil
}

// SentryPurgeInterval is how often PurgeSentryKeys should run; 0 when
// Sentry is not configured.
func (s *Service) SentryPurgeInterval() time.Duration {
	if s == nil || s.sentry == nil {
		return 0
	}
	return time.Duration(s.sentry.cfg.PurgeInterval)
}

// sentryKey is a key as Sentry's API returns it (the fields used).
type sentryKey struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Label string `json:"label"`
	DSN   struct {
		Secret string `json:"secret"`
		Public string `json:"public"`
	} `json:"dsn"`
}

// SentryDSN returns a DSN of project valid for at least 25 h: the newest
// managed key if it lasts that long, else a new key valid 48 h; a missing
// project is created under the initial team. ErrNotConfigured without a
// sentry section ("Sentry credentials not found"), ErrUpstream when Sentry
// fails.
func (s *Service) SentryDSN(ctx context.Context, project string) (SentryDSN, error) {
	b := s.sentry
	if b == nil {
		return SentryDSN{}, newErr(ErrNotConfigured, "Sentry credentials not found")
	}
	lock := b.projectLock(project)
	lock.Lock()
	defer lock.Unlock()
	now := s.cfg.Now()
	b.mu.Lock()
	cached, ok := b.cache[project]
	b.mu.Unlock()
	if ok && cached.Expires.After(now.Add(sentryMinRemaining)) {
		return cached, nil
	}
	keys, err := s.sentryProjectKeys(ctx, project, true)
	if err != nil {
		return SentryDSN{}, err
	}
	dsn, ok := b.newest(project, keys)
	if !ok || !dsn.Expires.After(now.Add(sentryMinRemaining)) {
		if dsn, err = s.sentryCreateKey(ctx, project, now.Add(sentryKeyLifetime)); err != nil {
			return SentryDSN{}, err
		}
	}
	b.mu.Lock()
	b.cache[project] = dsn
	b.mu.Unlock()
	return dsn, nil
}

func (b *sentryBackend) projectLock(project string) *sync.Mutex {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.locks[project]
	if l == nil {
		l = &sync.Mutex{}
		b.locks[project] = l
	}
	return l
}

// expiry parses a managed key's name; ok false for other keys.
func (b *sentryBackend) expiry(k sentryKey) (time.Time, bool) {
	name := k.Label
	if name == "" {
		name = k.Name
	}
	m := b.label.FindStringSubmatch(name)
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, m[1])
	return t, err == nil
}

// newest is the managed key that expires last.
func (b *sentryBackend) newest(project string, keys []sentryKey) (SentryDSN, bool) {
	var best SentryDSN
	found := false
	for _, k := range keys {
		if exp, ok := b.expiry(k); ok && (!found || exp.After(best.Expires)) {
			best, found = SentryDSN{Project: project, Secret: k.DSN.Secret, Public: k.DSN.Public, Expires: exp}, true
		}
	}
	return best, found
}

// sentryProjectKeys lists a project's keys; with create, a project Sentry
// does not know (404) is created under the initial team first.
func (s *Service) sentryProjectKeys(ctx context.Context, project string, create bool) ([]sentryKey, error) {
	b := s.sentry
	path := "projects/" + url.PathEscape(b.cfg.Organization) + "/" + url.PathEscape(project) + "/keys/"
	var keys []sentryKey
	status, err := s.sentryList(ctx, path, func(page []byte) error {
		var ks []sentryKey
		err := json.Unmarshal(page, &ks)
		keys = append(keys, ks...)
		return err
	})
	if status == http.StatusNotFound && create {
		body := map[string]string{"name": project, "slug": project}
		teamPath := "teams/" + url.PathEscape(b.cfg.Organization) + "/" + url.PathEscape(b.cfg.InitialTeam) + "/projects/"
		if _, err := s.sentryDo(ctx, http.MethodPost, teamPath, body); err != nil {
			return nil, err
		}
		s.log.Info("sentry project created", "project", project, "team", b.cfg.InitialTeam)
		return s.sentryProjectKeys(ctx, project, false)
	}
	return keys, err
}

// sentryCreateKey creates a managed key that expires at exp.
func (s *Service) sentryCreateKey(ctx context.Context, project string, exp time.Time) (SentryDSN, error) {
	b := s.sentry
	name := b.cfg.KeyPrefix + " managed (expires-at:" + exp.UTC().Format("2006-01-02T15:04:05.000Z") + ")"
	path := "projects/" + url.PathEscape(b.cfg.Organization) + "/" + url.PathEscape(project) + "/keys/"
	out, err := s.sentryDo(ctx, http.MethodPost, path, map[string]string{"name": name})
	if err != nil {
		return SentryDSN{}, err
	}
	var k sentryKey
	if err := json.Unmarshal(out, &k); err != nil || k.DSN.Secret == "" || k.DSN.Public == "" {
		return SentryDSN{}, newErr(ErrUpstream, "sentry: the created key of %s has no DSN", project)
	}
	s.log.Info("sentry key created", "project", project, "keyId", k.ID, "expires", exp.UTC().Format(time.RFC3339))
	return SentryDSN{Project: project, Secret: k.DSN.Secret, Public: k.DSN.Public, Expires: exp.UTC().Truncate(time.Millisecond)}, nil
}

// PurgeSentryKeys deletes the managed keys that have expired in every
// project of the organization and returns how many it deleted (a
// leader-only periodic job). Keys not named by this KeyPrefix are never
// touched. A nil error with 0 when Sentry is not configured.
func (s *Service) PurgeSentryKeys(ctx context.Context) (int, error) {
	b := s.sentry
	if b == nil {
		return 0, nil
	}
	var projects []string
	_, err := s.sentryList(ctx, "organizations/"+url.PathEscape(b.cfg.Organization)+"/projects/", func(page []byte) error {
		var ps []struct {
			Slug string `json:"slug"`
		}
		err := json.Unmarshal(page, &ps)
		for _, p := range ps {
			projects = append(projects, p.Slug)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	sort.Strings(projects)
	now, deleted := s.cfg.Now(), 0
	for _, p := range projects {
		keys, err := s.sentryProjectKeys(ctx, p, false)
		if err != nil {
			return deleted, err
		}
		for _, k := range keys {
			if exp, ok := b.expiry(k); ok && exp.Before(now) {
				path := "projects/" + url.PathEscape(b.cfg.Organization) + "/" + url.PathEscape(p) + "/keys/" + url.PathEscape(k.ID) + "/"
				if _, err := s.sentryDo(ctx, http.MethodDelete, path, nil); err != nil {
					return deleted, err
				}
				deleted++
			}
		}
	}
	return deleted, nil
}

// sentryList GETs path and every further page Sentry's Link header names
// (rel="next"; results="true"), handing each page's body to each.
func (s *Service) sentryList(ctx context.Context, path string, each func([]byte) error) (int, error) {
	u := s.sentry.base + path
	for range sentryMaxPages {
		resp, body, err := s.sentryRequest(ctx, http.MethodGet, u, nil)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, sentryStatusError(http.MethodGet, path, resp.StatusCode)
		}
		if err := each(body); err != nil {
			return resp.StatusCode, newErr(ErrUpstream, "sentry: GET %s answered something else than a list", path)
		}
		next := nextLink(resp.Header.Values("Link"))
		if next == "" {
			return resp.StatusCode, nil
		}
		// The token goes only to the configured server.
		if !strings.HasPrefix(next, s.sentry.base) {
			return resp.StatusCode, newErr(ErrUpstream, "sentry: GET %s: the next page is on another server", path)
		}
		u = next
	}
	return 0, newErr(ErrUpstream, "sentry: GET %s has more than %d pages", path, sentryMaxPages)
}

// sentryDo sends one non-list request (JSON body if in != nil) and
// expects 200, 201 or 204.
func (s *Service) sentryDo(ctx context.Context, method, path string, in any) ([]byte, error) {
	var body []byte
	if in != nil {
		body, _ = json.Marshal(in)
	}
	resp, out, err := s.sentryRequest(ctx, method, s.sentry.base+path, body)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
		return out, nil
	}
	return nil, sentryStatusError(method, path, resp.StatusCode)
}

func (s *Service) sentryRequest(ctx context.Context, method, u string, body []byte) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, nil, newErr(ErrUpstream, "sentry: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.sentry.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, nil, newErr(ErrUpstream, "sentry: %s: %v", method, redactURLError(err))
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, nil, newErr(ErrUpstream, "sentry: %s: reading the answer: %v", method, err)
	}
	return resp, out, nil
}

// sentryStatusError names the call and the status, never the answer's
// body (a key listing holds secrets).
func sentryStatusError(method, path string, status int) error {
	return newErr(ErrUpstream, "sentry: %s /api/0/%s answered %d", method, path, status)
}

// nextLink returns the URL of a Link header's rel="next" entry when it
// says results="true" (Sentry's cursor pagination), else "".
func nextLink(values []string) string {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if !strings.Contains(part, `rel="next"`) || !strings.Contains(part, `results="true"`) {
				continue
			}
			if i, j := strings.Index(part, "<"), strings.Index(part, ">"); i >= 0 && j > i {
				return part[i+1 : j]
			}
		}
	}
	return ""
}
