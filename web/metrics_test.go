package web

import (
	"context"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
)

// A scrape's own query of the logout queue is a statement: it must always
// land in the next scrape's count, never in its own, so that the
// difference of two scrapes with nothing in between is exactly one.
func TestMetricsCountStatementsBeforeTheirOwnQuery(t *testing.T) {
	var statements atomic.Uint64
	pending := func(context.Context) (int, error) { statements.Add(1); return 3, nil }
	h := newMetrics(pending, statements.Load).handler()
	count := regexp.MustCompile(`(?m)^mxidp_db_statements_total (\S+)$`)
	scrape := func() uint64 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", MetricsPath, nil))
		body := w.Body.String()
		if !regexp.MustCompile(`(?m)^mxidp_backchannel_logout_pending 3$`).MatchString(body) {
			t.Fatalf("no logout queue length in:\n%s", body)
		}
		m := count.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no statement count in:\n%s", body)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		return uint64(v)
	}
	last := scrape()
	if last != 0 {
		t.Errorf("first scrape counts %d statements, want 0 (its own query comes after)", last)
	}
	for i := range 100 {
		v := scrape()
		if v-last != 1 {
			t.Fatalf("scrape %d: count went from %d to %d, want one more", i, last, v)
		}
		last = v
	}
}

// Each kind of path counts in its route's series: a known route in its
// own, the REST service's paths in "rest", static files in "/static",
// anything else in "other".
func TestMetricsRouteOfEachKindOfPath(t *testing.T) {
	m := newMetrics(nil, nil)
	for path, want := range map[string]string{
		JWKSPath:                            JWKSPath,
		MetricsPath:                         MetricsPath,
		"/_ma1sd/backend/api/v1/auth/login": "rest",
		"//_mxisd/backend/api/v1/identity/single":         "rest",
		"/_matrix-internal/identity/v1/check_credentials": "rest",
		StaticPath + "/mxidp.css":                         StaticPath,
		StaticPath:                                        "other",
		StaticPath + "x/mxidp.css":                        "other",
		"/_ma1sdx":                                        "other",
		"/no/such/page":                                   "other",
	} {
		if got := m.route(path).label; got != want {
			t.Errorf("%s counts as %q, want %q", path, got, want)
		}
	}
}
