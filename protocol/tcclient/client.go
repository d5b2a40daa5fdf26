// Package tcclient is a small Go client for the Taskcluster auth v1 API as
// tcauth serves it. The CLI's admin commands, the sidecar and the
// integration tests use it; it signs requests with the protocol package's
// Hawk code, exactly as the official clients do.
package tcclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// Client calls one Taskcluster deployment. The zero value is not usable:
// RootURL is required. Credentials nil means anonymous calls.
type Client struct {
	// RootURL is the deployment's root URL, e.g. http://127.0.0.1:8080;
	// the API lives at RootURL + "/api/auth/v1".
	RootURL string
	// Credentials sign every request; nil sends none.
	Credentials *protocol.Credentials
	// HTTPClient defaults to a client with a 60 s timeout.
	HTTPClient *http.Client
	// Service defaults to "auth"; the path is /api/<Service>/v1.
	Service string
}

// ErrNoRootURL is returned by FromEnv when TASKCLUSTER_ROOT_URL is unset.
var ErrNoRootURL = errors.New("TASKCLUSTER_ROOT_URL is not set")

// FromEnv builds a client from the standard Taskcluster variables:
// TASKCLUSTER_ROOT_URL, TASKCLUSTER_CLIENT_ID, TASKCLUSTER_ACCESS_TOKEN and
// (for temporary credentials) TASKCLUSTER_CERTIFICATE.
func FromEnv() (*Client, error) {
	root := os.Getenv("TASKCLUSTER_ROOT_URL")
	if root == "" {
		return nil, ErrNoRootURL
	}
	c := &Client{RootURL: root}
	if id := os.Getenv("TASKCLUSTER_CLIENT_ID"); id != "" {
		c.Credentials = &protocol.Credentials{
			ClientID:    id,
			AccessToken: os.Getenv("TASKCLUSTER_ACCESS_TOKEN"),
			Certificate: os.Getenv("TASKCLUSTER_CERTIFICATE"),
		}
	}
	return c, nil
}

// Error is a non-2xx answer in Taskcluster's error shape.
type Error struct {
	StatusCode int
	Code       string
	Message    string
	// Header holds the answer's headers (e.g. X-Tcauth-Not-Applied).
	Header http.Header
}

func (e *Error) Error() string {
	msg := e.Message
	// The server appends a "---" block with method/code/status/time; the
	// first part is what a person wants to read.
	if i := strings.Index(msg, "\n\n---\n"); i >= 0 {
		msg = msg[:i]
	}
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d: %s", e.StatusCode, msg)
	}
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.StatusCode, msg)
}

// PathSegment escapes one path argument as the official clients do
// (JavaScript's encodeURIComponent), so "/" in a clientId travels as %2F.
func PathSegment(s string) string {
	const unreserved = "-_.!~*'()"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(unreserved, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// URL builds the full URL of a route such as "/clients/" + PathSegment(id).
func (c *Client) URL(route string, query url.Values) string {
	service := c.Service
	if service == "" {
		service = "auth"
	}
	u := strings.TrimRight(c.RootURL, "/") + "/api/" + service + "/v1" + route
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u
}

// Do sends one API call. body (if non-nil) is sent as JSON; out (if
// non-nil) receives the decoded JSON answer. A non-2xx answer returns *Error.
func (c *Client) Do(ctx context.Context, method, route string, query url.Values, body, out any) error {
	var payload []byte
	contentType := ""
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
		contentType = "application/json"
	}
	resp, err := c.DoRaw(ctx, method, route, query, contentType, payload)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding answer of %s %s: %w", method, route, err)
	}
	return nil
}

// DoRaw sends a signed request with a body of any type (contentType ""
// = no body) and returns the successful response unread, for answers that
// are not JSON or are large (backups). A non-2xx answer is an *Error.
func (c *Client) DoRaw(ctx context.Context, method, route string, query url.Values, contentType string, payload []byte) (*http.Response, error) {
	target := c.URL(route, query)
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if c.Credentials != nil {
		auth, err := protocol.SignRequest(*c.Credentials, method, target, protocol.SignOptions{
			ContentType: contentType,
			Payload:     payload,
			HasPayload:  contentType != "",
		})
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", auth)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	apiErr := &Error{StatusCode: resp.StatusCode, Header: resp.Header}
	var eb struct{ Code, Message string }
	if json.Unmarshal(data, &eb) == nil && eb.Code != "" {
		apiErr.Code, apiErr.Message = eb.Code, eb.Message
	} else {
		apiErr.Message = strings.TrimSpace(string(data))
	}
	return nil, apiErr
}

var defaultHTTPClient = &http.Client{Timeout: 60 * time.Second}
