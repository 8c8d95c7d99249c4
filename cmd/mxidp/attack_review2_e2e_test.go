package main

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/mxidp/mxidp/storage/storagetest"
)

// Attacks of the second review against a started mxidp: the REST door's
// paths and the end_session redirect.

// The bulk lookup's 8 MiB cap follows the path the REST service routes,
// which merges repeated slashes (docs/rest.md: a base URL ending in "/"
// doubles one); a contact book posted to "…/identity//bulk" was cut at the
// 64 KiB of every other path and answered 413. The other REST paths keep
// theirs, however spelled.
func TestBulkLookupKeepsItsCapHoweverItsPathDoublesSlashes(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			s := startREST(t, backend)
			body := bulk5000() // about 270 KiB
			for _, path := range []string{
				restPrefixes[0] + "/identity/bulk",
				"/" + restPrefixes[0] + "/identity/bulk",
				restPrefixes[0] + "/identity//bulk",
				restPrefixes[1] + "//identity//bulk",
			} {
				if status, got := restPost(t, s.url+path, body, nil); status != 200 {
					t.Errorf("POST %s with %d bytes: %d %v, want 200", path, len(body), status, got)
				}
			}
			for _, path := range []string{
				restPrefixes[0] + "/identity/single",
				"/" + restPrefixes[1] + "//identity/single",
				ccPath,
			} {
				if status, got := restPost(t, s.url+path, body, nil); status != 413 {
					t.Errorf("POST %s with %d bytes: %d %v, want 413", path, len(body), status, got)
				}
			}
		})
	}
}

// post_logout_redirect_uri is followed only when it is, byte for byte, an
// address the named client registered: no trailing slash, other case,
// userinfo, port trick, extra query, fragment or another client's address
// gets a redirect; the state is one query parameter, however it is
// spelled, and cannot add others.
func TestEndSessionRedirectsOnlyToTheExactRegisteredAddress(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		registered := "http://127.0.0.1:9/synapse/logged-out"
		withQuery := "http://127.0.0.1:9/synapse/bye?x=1"
		e.addClient("synapse", "--post-logout-redirect-uri", registered, "--post-logout-redirect-uri", withQuery)
		e.addClient("other", "--post-logout-redirect-uri", "http://127.0.0.1:9/other/bye")
		b := newBrowser(t)
		loggedOut := e.issuer + "/logged-out"
		for _, c := range []struct{ client, uri string }{
			{"synapse", registered + "/"},
			{"synapse", "http://127.0.0.1:9/Synapse/logged-out"},
			{"synapse", "HTTP://127.0.0.1:9/synapse/logged-out"},
			{"synapse", "http://evil@127.0.0.1:9/synapse/logged-out"},
			{"synapse", "http://127.0.0.1:9@evil.example/synapse/logged-out"},
			{"synapse", "http://127.0.0.1:9/synapse/logged-out?next=https://evil.example/"},
			{"synapse", "http://127.0.0.1:9/synapse/logged-out#x"},
			{"synapse", "http://127.0.0.1:9//synapse/logged-out"},
			{"synapse", " " + registered},
			{"synapse", withQuery + "&y=2"},
			{"synapse", "http://127.0.0.1:9/other/bye"},
			{"other", registered},
			{"", registered},
		} {
			q := url.Values{"post_logout_redirect_uri": {c.uri}, "state": {"s"}}
			if c.client != "" {
				q.Set("client_id", c.client)
			}
			if p := b.get(e.meta.EndSession + "?" + q.Encode()); p.location != loggedOut {
				t.Errorf("end_session for %q with %q: %d %q, want the logged-out page", c.client, c.uri, p.status, p.location)
			}
		}
		for _, c := range []struct{ uri, state, want string }{
			{registered, "a&next=https://evil.example/#f", registered + "?state=a%26next%3Dhttps%3A%2F%2Fevil.example%2F%23f"},
			{withQuery, "s", "http://127.0.0.1:9/synapse/bye?state=s&x=1"},
		} {
			q := url.Values{"client_id": {"synapse"}, "post_logout_redirect_uri": {c.uri}, "state": {c.state}}
			p := b.get(e.meta.EndSession + "?" + q.Encode())
			u, err := url.Parse(p.location)
			if p.location != c.want || err != nil || u.Host != "127.0.0.1:9" || fmt.Sprint(u.Query()["state"]) != fmt.Sprint([]string{c.state}) {
				t.Errorf("end_session to %q with state %q: %d %q, want %q", c.uri, c.state, p.status, p.location, c.want)
			}
		}
	})
}
