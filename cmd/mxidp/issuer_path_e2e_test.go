package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/mxidp/mxidp/storage/storagetest"
	"golang.org/x/oauth2"
)

// An issuer with a path is served under that path: go-oidc runs a whole
// login against http://127.0.0.1:PORT/idp, once with mxidp answering the
// prefixed paths itself and once behind a proxy that forwards only /idp/…
// and strips the prefix, as an nginx location with a trailing-slash
// proxy_pass does. Every endpoint discovery names is under the issuer.
func TestIssuerWithAPathIsServedUnderIt(t *testing.T) {
	for _, backend := range storagetest.Backends {
		for _, viaProxy := range []bool{false, true} {
			name := backend + "/direct"
			if viaProxy {
				name = backend + "/behind a proxy that strips the path"
			}
			t.Run(name, func(t *testing.T) {
				d := newDeployment(t, backend)
				listen := freeAddr(t)
				public := listen
				if viaProxy {
					public = stripProxy(t, "/idp", listen)
				}
				d.env["MXIDP_LISTEN"], d.env["MXIDP_ISSUER"] = listen, "http://"+public+"/idp"
				(&cli{t: t, env: d.env}).must(alicePassword+"\n", "user", "add", "alice", "--password-stdin",
					"--email", aliceEmail, "--name", aliceName)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				e := &openIDEnv{t: t, ctx: ctx, d: d, s: d.start(), issuer: d.env["MXIDP_ISSUER"]}
				p, err := oidc.NewProvider(ctx, e.issuer)
				if err != nil {
					t.Fatalf("discovery at %s: %v", e.issuer, err)
				}
				e.provider = p
				if err := p.Claims(&e.meta); err != nil {
					t.Fatal(err)
				}
				for _, ep := range []string{p.Endpoint().AuthURL, e.meta.Token, e.meta.Userinfo, e.meta.EndSession} {
					if !strings.HasPrefix(ep, e.issuer+"/") {
						t.Errorf("discovery names %s, not under the issuer %s", ep, e.issuer)
					}
				}
				cfg := e.config(e.addClient("rp"), oauth2.AuthStyleInHeader)
				b := newBrowser(t)
				l := e.exchange(cfg, e.authorize(b, cfg))
				if l.claims.Email != aliceEmail {
					t.Errorf("ID token e-mail %q, want %q", l.claims.Email, aliceEmail)
				}
				e.wantUserinfoOK("an access token of a login under the issuer's path", l.token.AccessToken)
				// The session cookie is scoped to the issuer's path: the
				// browser sends it back under /idp, so a second
				// authorization needs no password.
				again := e.authorizeWith(b, cfg, "again-"+randomAlnum(8), nil)
				if len(again.forms) != 0 {
					t.Errorf("the second authorization showed %d sign-in forms; the session cookie did not come back under the path", len(again.forms))
				}
			})
		}
	}
}

// freeAddr is the address of a free 127.0.0.1 port, nothing listening.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// stripProxy starts a reverse proxy that forwards requests under prefix to
// backend with the prefix removed, and answers 404 for anything else; it
// returns the proxy's address.
func stripProxy(t *testing.T, prefix, backend string) string {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: backend}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.URL.Path = strings.TrimPrefix(r.In.URL.Path, prefix)
		r.Out.URL.RawPath = ""
		r.Out.Host = r.In.Host
		r.SetXForwarded()
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, prefix+"/") {
			http.NotFound(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
