package webui

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// maxAPIAnswer bounds an in-process API answer held in memory (a page of
// 1000 clients with their scopes is far below it).
const maxAPIAnswer = 32 << 20

// apiTimeout bounds one API call of a page.
const apiTimeout = 30 * time.Second

var errAnswerTooLarge = errors.New("webui: the API answer is too large")

// remoteAddrKey carries the browser's address to the in-process request
// (the API logs it as the source).
type remoteAddrKey struct{}

// apiTransport hands a request signed by tcclient to the control plane's
// API handler without a network hop. The request is rebuilt as the server
// side of an HTTP exchange would see it, so the API authenticates it
// exactly as a network caller: RequestURI is the target as signed (the
// Hawk MAC covers it byte for byte, %2F included), Host is the signed
// host and port, and TLS is set for an https root URL so that the
// verifier's default port (protocol.RequestFromHTTP: the Host header's
// port, else 443 with TLS, else 80) is the port the signature used. No
// X-Forwarded-* header is ever set, and nothing of the browser's request
// (cookies, headers) is passed on.
type apiTransport struct{ api http.Handler }

func (t apiTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	sr, err := http.NewRequestWithContext(req.Context(), req.Method, req.URL.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	sr.Header = req.Header.Clone()
	sr.Host = req.URL.Host
	sr.RequestURI = req.URL.RequestURI()
	sr.ContentLength = int64(len(body))
	sr.Proto, sr.ProtoMajor, sr.ProtoMinor = "HTTP/1.1", 1, 1
	if req.URL.Scheme == "https" {
		sr.TLS = &tls.ConnectionState{HandshakeComplete: true, ServerName: req.URL.Hostname()}
	}
	sr.RemoteAddr, _ = req.Context().Value(remoteAddrKey{}).(string)
	if sr.RemoteAddr == "" {
		sr.RemoteAddr = "127.0.0.1:0"
	}
	rec := &recorder{header: http.Header{}}
	t.api.ServeHTTP(rec, sr)
	if rec.overflow {
		return nil, errAnswerTooLarge
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &http.Response{
		Status: strconv.Itoa(rec.status) + " " + http.StatusText(rec.status), StatusCode: rec.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: rec.header,
		Body: io.NopCloser(bytes.NewReader(rec.body.Bytes())), ContentLength: int64(rec.body.Len()), Request: req,
	}, nil
}

// recorder is the in-process response (bounded by maxAPIAnswer).
type recorder struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	overflow bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	if r.body.Len()+len(p) > maxAPIAnswer {
		r.overflow = true
		return 0, errAnswerTooLarge
	}
	return r.body.Write(p)
}

// Flush is a no-op: the whole answer is read at the end (the forwarder's
// reverse proxy flushes).
func (r *recorder) Flush() {}

// apiClient is a tcclient.Client that calls the API in process with creds.
func (s *Server) apiClient(creds protocol.Credentials) *tcclient.Client {
	return &tcclient.Client{
		RootURL:     s.cfg.RootURL,
		Credentials: &creds,
		HTTPClient:  &http.Client{Transport: apiTransport{s.cfg.API}, Timeout: apiTimeout},
	}
}

// withRemoteAddr marks ctx with the browser's address for the API's log.
func withRemoteAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, remoteAddrKey{}, addr)
}
