package sidecar

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the sidecar's Prometheus series, registered on the
// sidecar's own registry (so several sidecars can live in one process,
// e.g. in tests and `tcauth dev`).
type metrics struct {
	reg            *prometheus.Registry
	requests       *prometheus.CounterVec // route, outcome
	cache          *prometheus.CounterVec // cache, result
	singleflight   prometheus.Counter
	upstream       *prometheus.HistogramVec // code class
	verify         *prometheus.HistogramVec // mode
	cpLatency      *prometheus.HistogramVec // endpoint
	cpErrors       *prometheus.CounterVec   // endpoint
	feedEvents     *prometheus.CounterVec   // kind
	feedIndex      prometheus.Gauge
	lastSync       prometheus.Gauge
	roleGeneration prometheus.Gauge
	staleServed    prometheus.Counter
	replays        prometheus.Counter
	unknownRefused *prometheus.CounterVec // reason
	reloads        *prometheus.CounterVec // result

	// Series touched by every request, resolved once (WithLabelValues
	// hashes the labels and takes a lock on each call).
	clientHit, clientMiss, clientStale, negativeHit prometheus.Counter
	reexpanded                                      prometheus.Counter
	malformedID, overBudget, fetchesBusy            prometheus.Counter
	expandedHit, expandedMiss                       prometheus.Counter
	verifyLocal, verifyRemote                       prometheus.Observer
	upstreamByClass                                 [6]prometheus.Observer // index: status/100, 0 = transport error

	// byRoute caches requests' children by (route, outcome): route names
	// come from the policy, so the set is small, but not known up front.
	byRoute sync.Map // routeOutcome -> prometheus.Counter
}

type routeOutcome struct{ route, outcome string }

// request is requests_total{route, outcome}, resolved once per pair.
func (m *metrics) request(route, outcome string) prometheus.Counter {
	k := routeOutcome{route, outcome}
	if c, ok := m.byRoute.Load(k); ok {
		return c.(prometheus.Counter)
	}
	c, _ := m.byRoute.LoadOrStore(k, m.requests.WithLabelValues(route, outcome))
	return c.(prometheus.Counter)
}

func newMetrics(reg *prometheus.Registry) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	const ns = "tcauth_sidecar"
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "requests_total",
			Help: "Requests by route policy entry and outcome (allowed, public, auth_failed, insufficient_scopes, replayed, bad_request, no_route, unavailable, throttled, upstream_error)."}, []string{"route", "outcome"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "cache_requests_total",
			Help: "Cache lookups by cache (client, negative, expanded) and result (hit, miss, stale)."}, []string{"cache", "result"}),
		singleflight: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "client_fetches_shared_total",
			Help: "Client lookups that joined a fetch already in flight instead of starting one."}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "upstream_duration_seconds",
			Help: "Time from sending a request upstream to its response headers.", Buckets: prometheus.DefBuckets}, []string{"code"}),
		verify: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "verify_duration_seconds",
			Help:    "Time spent verifying a request's credentials.",
			Buckets: []float64{1e-6, 5e-6, 2e-5, 1e-4, 5e-4, 2e-3, 1e-2, 5e-2, 0.25, 1}}, []string{"mode"}),
		cpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "control_plane_duration_seconds",
			Help: "Latency of control-plane calls (not the feed's long poll).", Buckets: prometheus.DefBuckets}, []string{"endpoint"}),
		cpErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "control_plane_errors_total",
			Help: "Failed control-plane calls by endpoint."}, []string{"endpoint"}),
		feedEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "feed_events_total",
			Help: "Change-feed events applied, by kind (client, role, expired)."}, []string{"kind"}),
		feedIndex: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "feed_index",
			Help: "The control plane's index the sidecar has applied every change up to."}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "feed_last_sync_timestamp_seconds",
			Help: "When the sidecar last knew it had every change; feed lag = time() - this."}),
		roleGeneration: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "role_generation",
			Help: "Number of role sets the sidecar has applied."}),
		staleServed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "stale_served_total",
			Help: "Requests verified with cached data while the control plane was unreachable (within max-stale)."}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "replays_rejected_total",
			Help: "Requests rejected because their Hawk nonce was already used."}),
		unknownRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "unknown_client_refusals_total",
			Help: "Lookups of uncached clientIds answered without asking the control plane, by reason (malformed: not a valid clientId; over_budget: the source's budget is used up, 429; busy: too many such lookups in flight, 503)."}, []string{"reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "route_reloads_total",
			Help: "Route policy reloads by result (ok, error)."}, []string{"result"}),
	}
	m.clientHit, m.clientMiss = m.cache.WithLabelValues("client", "hit"), m.cache.WithLabelValues("client", "miss")
	m.clientStale, m.negativeHit = m.cache.WithLabelValues("client", "stale"), m.cache.WithLabelValues("negative", "hit")
	m.reexpanded = m.cache.WithLabelValues("client", "reexpanded") // cached client re-expanded after a role change
	m.expandedHit, m.expandedMiss = m.cache.WithLabelValues("expanded", "hit"), m.cache.WithLabelValues("expanded", "miss")
	m.malformedID = m.unknownRefused.WithLabelValues("malformed")
	m.overBudget, m.fetchesBusy = m.unknownRefused.WithLabelValues("over_budget"), m.unknownRefused.WithLabelValues("busy")
	m.verifyLocal, m.verifyRemote = m.verify.WithLabelValues("local"), m.verify.WithLabelValues("remote")
	m.upstreamByClass[0] = m.upstream.WithLabelValues("error")
	for i := 1; i < len(m.upstreamByClass); i++ {
		m.upstreamByClass[i] = m.upstream.WithLabelValues(strconv.Itoa(i) + "xx")
	}
	reg.MustRegister(m.requests, m.cache, m.singleflight, m.upstream, m.verify, m.cpLatency, m.cpErrors,
		m.feedEvents, m.feedIndex, m.lastSync, m.roleGeneration, m.staleServed, m.replays, m.unknownRefused, m.reloads)
	return m
}

// registerGauges adds series computed at scrape time.
func (m *metrics) registerGauges(cacheEntries func(string) float64, feedLag func() float64, nonces func() float64) {
	for _, name := range []string{"client", "negative", "expanded"} {
		name := name
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "tcauth_sidecar", Name: "cache_entries",
			Help: "Entries in each cache.", ConstLabels: prometheus.Labels{"cache": name}}, func() float64 { return cacheEntries(name) }))
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "tcauth_sidecar", Name: "feed_lag_seconds",
		Help: "How long the sidecar may have been missing changes: 0 while the feed is healthy."}, feedLag))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "tcauth_sidecar", Name: "nonces",
		Help: "Hawk nonces remembered for replay rejection."}, nonces))
}
