package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/provider/ma1sd"
)

type upDB struct{}

func (upDB) Ping(context.Context) error { return nil }

type noKeys struct{}

func (noKeys) JWKS() []byte           { return []byte(`{"keys":[]}`) }
func (noKeys) SigningKeyReady() error { return nil }

// Every body is capped before a handler reads it: 64 KiB, and 8 MiB for
// the REST bulk lookup. A body announced larger is refused unread; one
// sent without a length is cut at the cap, and whatever the handler made
// of the truncated body is replaced by the 413.
func TestBodiesAreCappedBeforeTheHandlerReadsThem(t *testing.T) {
	reached := 0
	rest := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		n, _ := io.Copy(io.Discard, r.Body) // a careless handler: the error is ignored
		w.Header().Set("Set-Cookie", "made=from-a-truncated-body")
		writeJSON(w, http.StatusOK, map[string]string{"read": strconv.FormatInt(n, 10)})
	})
	srv := httptest.NewServer(NewHandler(Deps{DB: upDB{}, Keys: noKeys{}, Logger: slog.New(slog.DiscardHandler), REST: rest}))
	defer srv.Close()
	cc := "/_matrix-internal/identity/v1/check_credentials"
	bulk := ma1sd.Prefixes[0] + "/identity/bulk"
	for _, tc := range []struct {
		name, path string
		size       int
		chunked    bool
		status     int
		reaches    bool
	}{
		{"under the cap", cc, 60 << 10, false, 200, true},
		{"announced over the cap", cc, 100 << 10, false, 413, false},
		{"chunked over the cap", cc, 100 << 10, true, 413, true},
		{"a contact book to the bulk lookup", bulk, 1 << 20, false, 200, true},
		{"chunked contact book", bulk, 1 << 20, true, 200, true},
		{"announced over the bulk cap", bulk, 9 << 20, false, 413, false},
		{"token endpoint, announced", "/oauth/token", 100 << 10, false, 413, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reached = 0
			var body io.Reader = strings.NewReader(strings.Repeat("a", tc.size))
			if tc.chunked {
				body = io.MultiReader(body) // no length known: sent chunked
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+tc.path, body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var answer map[string]string
			json.NewDecoder(resp.Body).Decode(&answer)
			if resp.StatusCode != tc.status || (reached > 0) != tc.reaches {
				t.Errorf("%d bytes to %s: %d %v, handler reached %t; want %d, reached %t", tc.size, tc.path, resp.StatusCode, answer, reached > 0, tc.status, tc.reaches)
			}
			if tc.status == 413 {
				want := "M_TOO_LARGE"
				got := answer["errcode"]
				if !ma1sd.Handles(tc.path) {
					want, got = "invalid_request", answer["error"]
				}
				if got != want || resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("413 answer %v (Set-Cookie %q, Cache-Control %q); want %s, no cookie, no-store", answer,
						resp.Header.Get("Set-Cookie"), resp.Header.Get("Cache-Control"), want)
				}
			}
		})
	}
}
