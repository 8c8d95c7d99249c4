package main

// The reverse proxy of a next-gen deployment, for the tests: one base URL
// that a Matrix client is given, sending the Matrix login, logout and
// refresh paths to mxidp (Synapse does not serve them when it delegates
// authentication) and everything else to Synapse, with Synapse's
// /_synapse/mas API hidden, as a deployment routes them
// (docs/next-gen-auth.md; MAS's documentation, "Reverse proxy setup", has
// location ~ ^/_matrix/client/(.*)/(login|logout|refresh) for the same).

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"testing"
)

// matrixAuthPath is what the proxy sends to mxidp: /login (and
// /login/sso/redirect[/{idpId}]), /logout, /logout/all and /refresh of any
// one client-server API version (v3, r0, ...).
var matrixAuthPath = regexp.MustCompile(`^/_matrix/client/[^/]+/(login|logout|refresh)(/|$)`)

// synapseInternalPath is Synapse's API for its authentication service,
// which a deployment answers 404 from outside.
var synapseInternalPath = regexp.MustCompile(`^/_synapse/mas(/|$)`)

// startMatrixProxy serves one base URL in front of Synapse and mxidp until
// the test ends and returns it (http://127.0.0.1:PORT).
//
// Both upstreams get X-Forwarded-For set to the proxy's TCP peer alone,
// X-Forwarded-Host and -Proto beside it; whatever forwarding headers the
// client sent are dropped (httputil's Rewrite strips them, SetXForwarded
// starts afresh), as nginx's proxy_set_header X-Forwarded-For $remote_addr
// does. mxidp trusts the header from loopback by default (trusted_proxies),
// so its throttle and audit log see each client's own address: a test
// client that dials from 127.0.0.N is client 127.0.0.N there.
func startMatrixProxy(t *testing.T, synapseURL, mxidpURL string) string {
	t.Helper()
	syn, err := url.Parse(synapseURL)
	if err != nil {
		t.Fatal(err)
	}
	idp, err := url.Parse(mxidpURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			if matrixAuthPath.MatchString(r.In.URL.Path) {
				r.SetURL(idp)
			} else {
				r.SetURL(syn)
			}
			r.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			t.Logf("matrix proxy: %s %s: %v", r.Method, r.URL.Path, err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if synapseInternalPath.MatchString(r.URL.Path) {
			http.NotFound(w, r)
			return
		}
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// clientFrom is an HTTP client whose connections come from the loopback
// address addr (127.0.0.2, 127.0.0.3, ...): another client network for
// mxidp's throttle behind the proxy.
func clientFrom(addr string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// TestMatrixProxyRoutesTheAuthPathsToMxidpAndTheRestToSynapse: the test
// proxy routes as a deployment does, keeps query strings, and names the
// client (not what the client claims) in X-Forwarded-For.
func TestMatrixProxyRoutesTheAuthPathsToMxidpAndTheRestToSynapse(t *testing.T) {
	type seen struct{ upstream, uri, xff, forwarded string }
	got := make(chan seen, 1)
	upstream := func(name string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- seen{name, r.URL.RequestURI(), r.Header.Get("X-Forwarded-For"), r.Header.Get("Forwarded")}
		}))
		t.Cleanup(s.Close)
		return s.URL
	}
	base := startMatrixProxy(t, upstream("synapse"), upstream("mxidp"))
	for path, want := range map[string]string{
		"/_matrix/client/v3/login":                             "mxidp",
		"/_matrix/client/r0/login":                             "mxidp",
		"/_matrix/client/v3/login/sso/redirect?redirectUrl=x":  "mxidp",
		"/_matrix/client/v3/login/sso/redirect/mxidp?a=b":      "mxidp",
		"/_matrix/client/v3/logout":                            "mxidp",
		"/_matrix/client/v3/logout/all":                        "mxidp",
		"/_matrix/client/r0/logout?access_token=t":             "mxidp",
		"/_matrix/client/v3/refresh":                           "mxidp",
		"/_matrix/client/v3/sync?timeout=0":                    "synapse",
		"/_matrix/client/v3/account/whoami":                    "synapse",
		"/_matrix/client/versions":                             "synapse",
		"/_matrix/client/v3/loginx":                            "synapse",
		"/_matrix/client/v3/rooms/%21r:mx.test/send/login/txn": "synapse",
		"/_synapse/mas/is_localpart_available":                 "",
		"/_synapse/client/oidc/callback":                       "synapse",
		"/.well-known/matrix/client":                           "synapse",
	} {
		req, _ := http.NewRequest(http.MethodPost, base+path, nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		req.Header.Set("Forwarded", "for=203.0.113.9")
		resp, err := clientFrom("127.0.0.5").Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp.Body.Close()
		if want == "" {
			if resp.StatusCode != http.StatusNotFound || len(got) != 0 {
				t.Errorf("%s: %d, passed on: %v; want 404 from the proxy", path, resp.StatusCode, len(got) != 0)
			}
			continue
		}
		s := <-got
		if s.upstream != want || s.uri != path {
			t.Errorf("%s went to %s as %s; want %s", path, s.upstream, s.uri, want)
		}
		if s.xff != "127.0.0.5" || s.forwarded != "" {
			t.Errorf("%s: X-Forwarded-For %q, Forwarded %q; want the client's address alone", path, s.xff, s.forwarded)
		}
	}
}
