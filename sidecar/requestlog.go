package sidecar

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tcauth/tcauth/protocol"
)

// RequestIDHeader carries a request's id (see protocol.RequestID);
// returned on the answer and sent upstream.
const RequestIDHeader = protocol.RequestIDHeader

// reqLog is what the request line says, filled in as the request is
// authorised (the forward-auth original request, the claimed clientId),
// and the proxy's decision for Rewrite: one context value per request
// instead of two (each WithContext copies the whole http.Request).
type reqLog struct {
	method, uri, clientID, route, outcome string
	decision                              *decision
}

type reqLogKey struct{}

func reqLogFrom(ctx context.Context) *reqLog {
	rl, _ := ctx.Value(reqLogKey{}).(*reqLog)
	return rl
}

// statusWriter remembers the status written; Unwrap keeps
// http.ResponseController (flush, hijack for websockets) working.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serveLogged runs serve with a request line logged at the end: method,
// path (query without bewit: a bewit is a credential), status, clientId,
// source, request id, route, outcome and duration. Never a header.
func (s *Sidecar) serveLogged(w http.ResponseWriter, r *http.Request, serve func(http.ResponseWriter, *http.Request)) {
	start := time.Now()
	id := protocol.RequestID(r.Header)
	r.Header.Set(RequestIDHeader, id)
	w.Header().Set(RequestIDHeader, id)
	rl := &reqLog{method: r.Method, uri: r.RequestURI}
	sw := &statusWriter{ResponseWriter: w}
	serve(sw, r.WithContext(context.WithValue(r.Context(), reqLogKey{}, rl)))
	if !s.log.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{slog.String("method", rl.method), slog.String("path", protocol.RedactURI(rl.uri)),
		slog.Int("status", sw.status), slog.String("source", sourceKey(r, s.peerTrusted(r))), slog.String("requestId", id)}
	if rl.clientID != "" {
		attrs = append(attrs, slog.String("clientId", rl.clientID))
	}
	if rl.route != "" {
		attrs = append(attrs, slog.String("route", rl.route))
	}
	attrs = append(attrs, slog.String("outcome", rl.outcome), slog.Int64("duration_ms", time.Since(start).Milliseconds()))
	// The record is handed to the handler directly: Logger.LogAttrs walks
	// the stack (runtime.Callers) for a source location on every call, a
	// few microseconds per request that the request line never shows.
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
	rec.AddAttrs(attrs...)
	_ = s.log.Handler().Handle(r.Context(), rec)
}

// noteVerified counts a verification outcome and records the claimed
// clientId for the request line.
func (s *Sidecar) noteVerified(ctx context.Context, res *verifyResult, claimed string) {
	switch {
	case res.Err != nil:
		s.auth.WithLabelValues("error", protocol.ReasonLookupFailed).Inc()
	case res.Status == protocol.StatusFailed:
		s.auth.WithLabelValues("failed", protocol.FailureReason(res.Reason)).Inc()
	case res.Status == protocol.StatusNoAuth:
		s.authAnonymous.Inc()
	default:
		s.authSuccess.Inc()
	}
	if rl := reqLogFrom(ctx); rl != nil {
		rl.clientID = claimed
		if res.ClientID != "" {
			rl.clientID = res.ClientID
		}
	}
}

// noteOutcome records the route and outcome for the request line.
func noteOutcome(ctx context.Context, route, outcome string) {
	if rl := reqLogFrom(ctx); rl != nil {
		rl.route, rl.outcome = route, outcome
	}
}

func newAuthCounter(reg *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tcauth_sidecar", Name: "authentications_total",
		Help: "Credential verifications by result (success, anonymous, failed, error) and, for failures, reason (bad_mac, stale_timestamp, unknown_client, ...)."},
		[]string{"result", "reason"})
	reg.MustRegister(c)
	return c
}

// pprofMux adds Go's profiles to the admin mux (Config.EnablePprof).
func pprofMux(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
