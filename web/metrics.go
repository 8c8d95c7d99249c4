package web

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/provider/ma1sd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsPath serves Prometheus metrics (README, "Operations").
const MetricsPath = "/metrics"

// metrics are the HTTP surface's Prometheus metrics, in a registry of their
// own (no global state).
type metrics struct {
	registry       *prometheus.Registry
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	passwordChecks *prometheus.CounterVec
	// Every request counts in one route's series; finding a series in a
	// vector hashes its labels and takes a lock, so each route keeps the
	// series it has used. known holds the knownRoutes' by path.
	known                    map[string]*routeSeries
	rest, static, otherRoute *routeSeries
}

// routeSeries are one route's series: its duration histogram and its
// request counter per status code, each made when first used (a route
// that was never asked for shows no series).
type routeSeries struct {
	label    string
	mu       sync.Mutex // held while adding a series
	duration atomic.Pointer[prometheus.Observer]
	codes    atomic.Pointer[[]codeSeries] // replaced, never changed
}

type codeSeries struct {
	status   int
	requests prometheus.Counter
}

// knownRoutes name the paths metrics are labelled with; anything else is
// "other", so that scanners cannot blow up the label set.
var knownRoutes = map[string]bool{
	"/authorize": true, "/authorize/callback": true, "/oauth/token": true, "/oauth/introspect": true,
	"/revoke": true, "/userinfo": true, "/end_session": true, JWKSPath: true, "/.well-known/openid-configuration": true,
	"/login": true, "/consent": true, "/logout": true, "/logged-out": true,
	"/healthz": true, "/readyz": true, MetricsPath: true,
	provider.SynapseIntrospectionPath: true, provider.RegistrationPath: true, provider.AccountPath: true,
}

// route is the series path counts in: its own for a known route, else
// "rest" for the REST service's paths, "/static" for the static files,
// "other" for anything else.
func (m *metrics) route(path string) *routeSeries {
	if r, ok := m.known[path]; ok {
		return r
	}
	switch {
	case ma1sd.Handles(path):
		return m.rest
	case len(path) > len(StaticPath) && path[:len(StaticPath)+1] == StaticPath+"/":
		return m.static
	default:
		return m.otherRoute
	}
}

// newMetrics registers the request metrics, Go and process metrics, the
// length of the back-channel logout queue when pending is given, and the
// count of database statements when statements is.
func newMetrics(pending func(context.Context) (int, error), statements func() uint64) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxidp_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mxidp_http_request_duration_seconds", Help: "Time to answer HTTP requests, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		passwordChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxidp_password_checks_total", Help: "Password checks by door (login page, rest) and result (succeeded, failed, throttled, oversized, error).",
		}, []string{"door", "result"}),
	}
	m.known = make(map[string]*routeSeries, len(knownRoutes))
	for path := range knownRoutes {
		m.known[path] = &routeSeries{label: path}
	}
	m.rest, m.static, m.otherRoute = &routeSeries{label: "rest"}, &routeSeries{label: StaticPath}, &routeSeries{label: "other"}
	m.registry.MustRegister(m.requests, m.duration, m.passwordChecks,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if pending != nil || statements != nil {
		m.registry.MustRegister(&storeCollector{pending: pending, statements: statements})
	}
	return m
}

var (
	pendingDesc = prometheus.NewDesc("mxidp_backchannel_logout_pending",
		"Back-channel logout notices waiting for delivery (-1: database unavailable).", nil, nil)
	statementsDesc = prometheus.NewDesc("mxidp_db_statements_total",
		"Statements sent to mxidp's own database: queries, and BEGIN, COMMIT and ROLLBACK.", nil, nil)
)

// storeCollector reports the statement count and then the back-channel
// logout queue, one after the other. Counting the queue is a statement
// itself: read first, the count never includes the scrape's own query, so
// that every scrape adds the same to the next one's count and the
// difference of two scrapes is exact (the load generator counts a login
// flow's statements so, step by step).
type storeCollector struct {
	pending    func(context.Context) (int, error)
	statements func() uint64
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.statements != nil {
		ch <- statementsDesc
	}
	if c.pending != nil {
		ch <- pendingDesc
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.statements != nil {
		ch <- prometheus.MustNewConstMetric(statementsDesc, prometheus.CounterValue, float64(c.statements()))
	}
	if c.pending != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := c.pending(ctx)
		if err != nil {
			n = -1
		}
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(n))
	}
}

func (m *metrics) observe(path string, status int, d time.Duration) {
	r := m.route(path)
	r.counter(m, status).Inc()
	r.observer(m).Observe(d.Seconds())
}

// counter is the route's request counter for status.
func (r *routeSeries) counter(m *metrics, status int) prometheus.Counter {
	if c := r.findCode(status); c != nil {
		return c
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.findCode(status); c != nil {
		return c
	}
	var codes []codeSeries
	if p := r.codes.Load(); p != nil {
		codes = *p
	}
	c := m.requests.WithLabelValues(r.label, strconv.Itoa(status))
	// A new slice: readers may be going through the old one.
	codes = append(slices.Clip(codes), codeSeries{status, c})
	r.codes.Store(&codes)
	return c
}

// findCode is the route's counter for status if it has one, else nil.
func (r *routeSeries) findCode(status int) prometheus.Counter {
	if codes := r.codes.Load(); codes != nil {
		for _, c := range *codes {
			if c.status == status {
				return c.requests
			}
		}
	}
	return nil
}

// observer is the route's duration histogram.
func (r *routeSeries) observer(m *metrics) prometheus.Observer {
	if o := r.duration.Load(); o != nil {
		return *o
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if o := r.duration.Load(); o != nil {
		return *o
	}
	o := m.duration.WithLabelValues(r.label)
	r.duration.Store(&o)
	return o
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
