package storagetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage"
)

// The OpenID half of the suite: authorization requests and codes, tokens,
// browser sessions, back-channel logout and purging. Concurrent tests start
// their goroutines together on a closed channel so that they really race.

func element() storage.Client {
	return storage.Client{ID: "element", Public: true, RedirectURIs: []string{"https://app.example.org/"}}
}

// otherRP is a second client with a back-channel URI.
func otherRP() storage.Client {
	return storage.Client{ID: "other-rp", SecretHash: "sha256$def", RedirectURIs: []string{"https://rp.example.net/cb"},
		BackchannelLogoutURI: "https://rp.example.net/backchannel"}
}

// authRequest returns a pending request with every creation-time field set.
func authRequest(id string, clk *clock) storage.AuthRequest {
	maxAge := int64(3600)
	return storage.AuthRequest{
		ID:                  id,
		ClientID:            "synapse",
		RedirectURI:         synapse().RedirectURIs[0],
		Scopes:              []string{"openid", "profile", "email"},
		State:               "state-" + id,
		Nonce:               "nonce-" + id,
		ResponseType:        "code",
		ResponseMode:        "query",
		CodeChallenge:       "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		CodeChallengeMethod: "S256",
		Prompt:              []string{"login", "consent"},
		MaxAge:              &maxAge,
		LoginHint:           "alice",
		UILocales:           "fr-CA en",
		CreatedAt:           clk.Now(),
		ExpiresAt:           clk.Now().Add(10 * time.Minute),
	}
}

// sameAuthRequest compares requests, taking an empty list as equal to nil.
func sameAuthRequest(a, b storage.AuthRequest) bool {
	for _, r := range []*storage.AuthRequest{&a, &b} {
		nilIfEmpty(&r.Scopes, &r.Prompt, &r.AMR)
	}
	return reflect.DeepEqual(a, b)
}

func sameToken(a, b storage.Token) bool {
	for _, t := range []*storage.Token{&a, &b} {
		nilIfEmpty(&t.Scopes, &t.Audience, &t.AMR)
	}
	return reflect.DeepEqual(a, b)
}

func nilIfEmpty(lists ...*[]string) {
	for _, l := range lists {
		if len(*l) == 0 {
			*l = nil
		}
	}
}

func showMaxAge(p *int64) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

// codeIssued stores a request, completes it for alice in session sid and
// saves a code (hash codeHash) valid for a minute.
func codeIssued(t *testing.T, s *storage.Store, clk *clock, id, sid, codeHash string) storage.AuthRequest {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateAuthRequest(ctx, authRequest(id, clk)); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteAuthRequest(ctx, id, "u-alice", sid, clk.Now(), []string{"pwd"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveAuthCode(ctx, id, codeHash, clk.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	a, err := s.AuthRequestByCodeHash(ctx, codeHash)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// newToken returns a token of synapse's; a refresh token's hash is "hash-"+id.
func newToken(clk *clock, id, kind, family, user, session string) storage.Token {
	tok := storage.Token{ID: id, Kind: kind, FamilyID: family, ClientID: "synapse", UserID: user, SessionID: session,
		Scopes: []string{"openid", "profile"}, Audience: []string{"synapse"}, AuthTime: clk.Now().Add(-time.Minute),
		AMR: []string{"pwd"}, CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}
	if kind == storage.RefreshToken {
		tok.Hash = "hash-" + id
		tok.ExpiresAt = clk.Now().Add(30 * 24 * time.Hour)
	}
	return tok
}

func issue(t *testing.T, s *storage.Store, tokens ...storage.Token) {
	t.Helper()
	if err := s.IssueTokens(context.Background(), storage.Issue{Tokens: tokens}); err != nil {
		t.Fatalf("IssueTokens: %v", err)
	}
}

// revoked reports whether each token is revoked, failing on a missing one.
func revoked(t *testing.T, s *storage.Store, ids ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, id := range ids {
		tok, err := s.TokenByID(context.Background(), id)
		if err != nil {
			t.Fatalf("TokenByID(%s): %v", id, err)
		}
		out[id] = tok.Revoked
	}
	return out
}

func wantRevoked(t *testing.T, s *storage.Store, want bool, ids ...string) {
	t.Helper()
	for id, r := range revoked(t, s, ids...) {
		if r != want {
			t.Errorf("token %s: revoked = %v, want %v", id, r, want)
		}
	}
}

// column runs a query for one text column directly on the database, to see
// rows that the store's methods hide (expired ones), and sorts the result.
func column(t *testing.T, s *storage.Store, query string, args ...any) []string {
	t.Helper()
	rows, err := s.DB().QueryContext(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// race runs fn(0..n-1) in n goroutines started together.
func race(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

// onlyWinner checks that exactly one of errs is nil and the rest are
// ErrConflict, and returns the winner's index.
func onlyWinner(t *testing.T, what string, errs []error) int {
	t.Helper()
	winner, wins := -1, 0
	for i, err := range errs {
		switch {
		case err == nil:
			winner = i
			wins++
		case !errors.Is(err, storage.ErrConflict):
			t.Errorf("%s %d: err = %v, want nil or ErrConflict", what, i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d parallel %ss: %d succeeded, want exactly 1", len(errs), what, wins)
	}
	return winner
}

func testAuthRequestRoundTrip(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()

	full := authRequest("ar-full", clk)
	full.UserID = "u-alice" // a hint of who is expected, before the login
	zero := authRequest("ar-max-age-0", clk)
	zero.MaxAge = new(int64) // max_age=0 (re-authenticate) is not "no max_age"
	zero.Prompt = nil
	minimal := storage.AuthRequest{ID: "ar-minimal", ClientID: "element", RedirectURI: "https://app.example.org/",
		Scopes: []string{"openid"}, ResponseType: "code", CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Minute)}
	for _, want := range []storage.AuthRequest{full, zero, minimal} {
		if err := s.CreateAuthRequest(ctx, want); err != nil {
			t.Fatalf("CreateAuthRequest(%s): %v", want.ID, err)
		}
	}
	for _, want := range []storage.AuthRequest{full, zero, minimal} {
		got, err := s.AuthRequestByID(ctx, want.ID)
		if err != nil || !sameAuthRequest(got, want) {
			t.Errorf("AuthRequestByID(%s) = %+v (max_age %s), %v;\nwant %+v (max_age %s)",
				want.ID, got, showMaxAge(got.MaxAge), err, want, showMaxAge(want.MaxAge))
		}
	}
	if _, err := s.AuthRequestByID(ctx, "ar-missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("missing request: err = %v, want ErrNotFound", err)
	}
	if err := s.CreateAuthRequest(ctx, authRequest("ar-full", clk)); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Errorf("duplicate request ID: err = %v, want ErrAlreadyExists", err)
	}
	if err := s.DeleteAuthRequest(ctx, "ar-full"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthRequestByID(ctx, "ar-full"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleted request still found: %v", err)
	}
	if err := s.DeleteAuthRequest(ctx, "ar-full"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}
}

func testExpiredAuthRequestIsNotFound(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	a := authRequest("ar-1", clk)
	if err := s.CreateAuthRequest(ctx, a); err != nil {
		t.Fatal(err)
	}
	clk.Advance(a.ExpiresAt.Sub(clk.Now()) - time.Second)
	if _, err := s.AuthRequestByID(ctx, "ar-1"); err != nil {
		t.Fatalf("a second before it expires: %v", err)
	}
	clk.Advance(time.Second)
	if _, err := s.AuthRequestByID(ctx, "ar-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("at ExpiresAt: err = %v, want ErrNotFound", err)
	}
	if err := s.CompleteAuthRequest(ctx, "ar-1", "u-alice", "sid-1", clk.Now(), []string{"pwd"}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("completing an expired request: err = %v, want ErrNotFound", err)
	}
}

func testCompleteAuthRequestRecordsTheLogin(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	want := authRequest("ar-1", clk)
	if err := s.CreateAuthRequest(ctx, want); err != nil {
		t.Fatal(err)
	}
	clk.Advance(20 * time.Second)
	authTime := clk.Now().Add(-time.Hour) // an earlier single sign-on login
	if err := s.CompleteAuthRequest(ctx, "ar-1", "u-alice", "sid-1", authTime, []string{"pwd", "otp"}); err != nil {
		t.Fatal(err)
	}
	want.UserID, want.SessionID, want.AuthTime, want.AMR, want.Done = "u-alice", "sid-1", authTime, []string{"pwd", "otp"}, true
	got, err := s.AuthRequestByID(ctx, "ar-1")
	if err != nil || !sameAuthRequest(got, want) {
		t.Errorf("after CompleteAuthRequest = %+v, %v;\nwant %+v", got, err, want)
	}
	if err := s.CompleteAuthRequest(ctx, "ar-missing", "u-alice", "sid-1", authTime, nil); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("completing a missing request: err = %v, want ErrNotFound", err)
	}
}

func testAuthCodeNeedsACompletedRequest(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	if err := s.CreateAuthRequest(ctx, authRequest("ar-1", clk)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveAuthCode(ctx, "ar-1", "code-1", clk.Now().Add(time.Minute)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("code for a request nobody logged in to: err = %v, want ErrNotFound", err)
	}
	if _, err := s.AuthRequestByCodeHash(ctx, "code-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the refused code was stored: err = %v, want ErrNotFound", err)
	}
	if err := s.IssueTokens(ctx, storage.Issue{ConsumeAuthRequest: "ar-1",
		Tokens: []storage.Token{newToken(clk, "at-1", storage.AccessToken, "fam-1", "u-alice", "")}}); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("exchanging the code of a pending request: err = %v, want ErrConflict", err)
	}
	if err := s.SaveAuthCode(ctx, "ar-missing", "code-2", clk.Now().Add(time.Minute)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("code for a missing request: err = %v, want ErrNotFound", err)
	}
}

// AuthRequestWithSession reads a request and the live session that
// completed it in one statement; no session, another one's, or an expired
// one give a zero Session with the request.
func testAuthRequestWithSession(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	want := authRequest("ar-1", clk)
	if err := s.CreateAuthRequest(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, sess, err := s.AuthRequestWithSession(ctx, "ar-1"); err != nil || !sameAuthRequest(got, want) || sess.ID != "" {
		t.Errorf("pending request = %+v, %+v, %v; want it without a session", got, sess, err)
	}
	live := storage.Session{ID: "sid-1", TokenHash: "th-1", UserID: "u-alice", AuthTime: clk.Now(),
		CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}
	other := live
	other.ID, other.TokenHash = "sid-2", "th-2"
	for _, sess := range []storage.Session{live, other} {
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CompleteAuthRequest(ctx, "ar-1", "u-alice", "sid-1", clk.Now(), []string{"pwd"}); err != nil {
		t.Fatal(err)
	}
	before := s.Statements()
	got, sess, err := s.AuthRequestWithSession(ctx, "ar-1")
	if n := s.Statements() - before; n != 1 {
		t.Errorf("took %d statements, want 1", n)
	}
	want.UserID, want.SessionID, want.AuthTime, want.AMR, want.Done = "u-alice", "sid-1", clk.Now(), []string{"pwd"}, true
	if err != nil || !sameAuthRequest(got, want) || sess.ID != "sid-1" || sess.TokenHash != "th-1" || sess.UserID != "u-alice" ||
		!sess.ExpiresAt.Equal(live.ExpiresAt) || !sess.AuthTime.Equal(live.AuthTime) {
		t.Errorf("completed request = %+v, %+v, %v;\nwant %+v with session sid-1", got, sess, err, want)
	}
	clk.Advance(time.Hour)
	if err := s.CreateAuthRequest(ctx, authRequest("ar-2", clk)); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteAuthRequest(ctx, "ar-2", "u-alice", "sid-1", clk.Now(), []string{"pwd"}); err != nil {
		t.Fatal(err)
	}
	if got, sess, err := s.AuthRequestWithSession(ctx, "ar-2"); err != nil || got.ID != "ar-2" || sess.ID != "" {
		t.Errorf("request of an expired session = %+v, %+v, %v; want it without the session", got, sess, err)
	}
	if _, _, err := s.AuthRequestWithSession(ctx, "ar-missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("missing request: err = %v, want ErrNotFound", err)
	}
}

func testAuthRequestByCodeHashUntilTheCodeExpires(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	want := authRequest("ar-1", clk)
	if err := s.CreateAuthRequest(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteAuthRequest(ctx, "ar-1", "u-alice", "sid-1", clk.Now(), []string{"pwd"}); err != nil {
		t.Fatal(err)
	}
	codeExpires := clk.Now().Add(time.Minute)
	if err := s.SaveAuthCode(ctx, "ar-1", "code-1", codeExpires); err != nil {
		t.Fatal(err)
	}
	want.UserID, want.SessionID, want.AuthTime, want.AMR, want.Done = "u-alice", "sid-1", clk.Now(), []string{"pwd"}, true
	want.CodeExpiresAt = codeExpires
	got, err := s.AuthRequestByCodeHash(ctx, "code-1")
	if err != nil || !sameAuthRequest(got, want) {
		t.Errorf("AuthRequestByCodeHash = %+v, %v;\nwant %+v", got, err, want)
	}
	if _, err := s.AuthRequestByCodeHash(ctx, "code-other"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown code: err = %v, want ErrNotFound", err)
	}
	clk.Advance(time.Minute - time.Second)
	if _, err := s.AuthRequestByCodeHash(ctx, "code-1"); err != nil {
		t.Errorf("a second before the code expires: %v", err)
	}
	clk.Advance(time.Second)
	if _, err := s.AuthRequestByCodeHash(ctx, "code-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("at CodeExpiresAt: err = %v, want ErrNotFound", err)
	}
	if err := s.IssueTokens(ctx, storage.Issue{ConsumeAuthRequest: "ar-1",
		Tokens: []storage.Token{newToken(clk, "at-1", storage.AccessToken, "fam-1", "u-alice", "")}}); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("exchanging an expired code: err = %v, want ErrConflict", err)
	}
	if _, err := s.TokenByID(ctx, "at-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a refused exchange stored its token: err = %v", err)
	}
}

func testCodeExchangeIsSingleUseUnderConcurrency(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	codeIssued(t, s, clk, "ar-1", "", "code-1")

	const n = 8
	errs := make([]error, n)
	race(n, func(i int) {
		errs[i] = s.IssueTokens(ctx, storage.Issue{ConsumeAuthRequest: "ar-1", Tokens: []storage.Token{
			newToken(clk, fmt.Sprintf("at-%d", i), storage.AccessToken, fmt.Sprintf("fam-%d", i), "u-alice", "")}})
	})
	winner := onlyWinner(t, "code exchange", errs)
	for i := range n {
		_, err := s.TokenByID(ctx, fmt.Sprintf("at-%d", i))
		if i == winner && err != nil {
			t.Errorf("the winning exchange's token: %v", err)
		}
		if i != winner && !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("losing exchange %d stored its token: err = %v", i, err)
		}
	}
	if rows := column(t, s, `SELECT id FROM tokens`); len(rows) != 1 {
		t.Errorf("tokens after %d exchanges of one code: %v; want exactly one", n, rows)
	}

	// The consumed request stays findable by its code, to detect a replay.
	got, err := s.AuthRequestByCodeHash(ctx, "code-1")
	if err != nil || got.ID != "ar-1" || !got.Consumed || !got.Done || got.UserID != "u-alice" {
		t.Errorf("after the exchange AuthRequestByCodeHash = %+v, %v; want ar-1, consumed", got, err)
	}
	if err := s.SaveAuthCode(ctx, "ar-1", "code-2", clk.Now().Add(time.Minute)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("new code for a consumed request: err = %v, want ErrNotFound", err)
	}
	if _, err := s.AuthRequestByCodeHash(ctx, "code-2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the refused code was stored: err = %v, want ErrNotFound", err)
	}
	if err := s.CompleteAuthRequest(ctx, "ar-1", "u-bob", "sid-2", clk.Now(), nil); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("completing a consumed request: err = %v, want ErrNotFound", err)
	}
	if err := s.IssueTokens(ctx, storage.Issue{ConsumeAuthRequest: "ar-1", Tokens: []storage.Token{
		newToken(clk, "at-late", storage.AccessToken, "fam-late", "u-alice", "")}}); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("exchange after the code was consumed: err = %v, want ErrConflict", err)
	}
}

// testCodeExchangeIsAllOrNothing makes the token insert fail after the code
// was marked consumed: the transaction must leave the code unconsumed.
func testCodeExchangeIsAllOrNothing(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	codeIssued(t, s, clk, "ar-1", "sid-1", "code-1")
	issue(t, s, newToken(clk, "at-taken", storage.AccessToken, "fam-0", "u-bob", ""))

	err := s.IssueTokens(ctx, storage.Issue{ConsumeAuthRequest: "ar-1", Tokens: []storage.Token{
		newToken(clk, "at-new", storage.AccessToken, "fam-1", "u-alice", "sid-1"),
		newToken(clk, "at-taken", storage.AccessToken, "fam-1", "u-alice", "sid-1"),
	}})
	if !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("issuing a taken token ID: err = %v, want ErrAlreadyExists", err)
	}
	if got, err := s.AuthRequestByCodeHash(ctx, "code-1"); err != nil || got.Consumed {
		t.Errorf("after a failed exchange the request is %+v, %v; want it unconsumed", got, err)
	}
	if _, err := s.TokenByID(ctx, "at-new"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a failed exchange stored a token: err = %v", err)
	}
	if rows := column(t, s, `SELECT client_id FROM session_clients`); len(rows) != 0 {
		t.Errorf("a failed exchange recorded session clients %v", rows)
	}
	if err := s.IssueTokens(ctx, storage.Issue{ConsumeAuthRequest: "ar-1", Tokens: []storage.Token{
		newToken(clk, "at-new", storage.AccessToken, "fam-1", "u-alice", "sid-1")}}); err != nil {
		t.Errorf("retrying the exchange: %v", err)
	}
}

func testTokenRoundTrip(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	access := newToken(clk, "at-1", storage.AccessToken, "fam-1", "u-alice", "sid-1")
	access.Audience = []string{"synapse", "element"}
	access.AMR = []string{"pwd", "otp"}
	refresh := newToken(clk, "rt-1", storage.RefreshToken, "fam-1", "u-alice", "sid-1")
	bare := storage.Token{ID: "at-bare", Kind: storage.AccessToken, FamilyID: "fam-2", ClientID: "element",
		UserID: "u-bob", CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Minute)}
	issue(t, s, access, refresh, bare)
	for _, want := range []storage.Token{access, refresh, bare} {
		got, err := s.TokenByID(ctx, want.ID)
		if err != nil || !sameToken(got, want) {
			t.Errorf("TokenByID(%s) = %+v, %v;\nwant %+v", want.ID, got, err, want)
		}
	}
	if got, err := s.TokenByHash(ctx, "hash-rt-1"); err != nil || !sameToken(got, refresh) {
		t.Errorf("TokenByHash = %+v, %v;\nwant %+v", got, err, refresh)
	}
	if _, err := s.TokenByID(ctx, "missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("missing token: err = %v, want ErrNotFound", err)
	}
	if _, err := s.TokenByHash(ctx, "missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("missing hash: err = %v, want ErrNotFound", err)
	}
	dupHash := newToken(clk, "rt-2", storage.RefreshToken, "fam-3", "u-alice", "")
	dupHash.Hash = refresh.Hash
	if err := s.IssueTokens(ctx, storage.Issue{Tokens: []storage.Token{dupHash}}); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Errorf("a refresh token with a taken hash: err = %v, want ErrAlreadyExists", err)
	}
}

func testRefreshRotationIsSingleUseUnderConcurrency(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	issue(t, s, newToken(clk, "rt-0", storage.RefreshToken, "fam-1", "u-alice", ""))

	const n = 8
	errs := make([]error, n)
	race(n, func(i int) {
		errs[i] = s.IssueTokens(ctx, storage.Issue{RotateRefreshHash: "hash-rt-0", Tokens: []storage.Token{
			newToken(clk, fmt.Sprintf("rt-new-%d", i), storage.RefreshToken, "fam-1", "u-alice", ""),
			newToken(clk, fmt.Sprintf("at-new-%d", i), storage.AccessToken, "fam-1", "u-alice", ""),
		}})
	})
	winner := onlyWinner(t, "refresh rotation", errs)
	for i := range n {
		_, err := s.TokenByHash(ctx, fmt.Sprintf("hash-rt-new-%d", i))
		if i == winner && err != nil {
			t.Errorf("the winning rotation's refresh token: %v", err)
		}
		if i != winner && !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("losing rotation %d stored its refresh token: err = %v", i, err)
		}
	}
	if rows := column(t, s, `SELECT id FROM tokens`); len(rows) != 3 {
		t.Errorf("tokens after %d rotations: %v; want the old refresh token and one new pair", n, rows)
	}
	old, err := s.TokenByHash(ctx, "hash-rt-0")
	if err != nil || !old.Rotated || old.Revoked {
		t.Errorf("the rotated token = %+v, %v; want rotated, not revoked", old, err)
	}
	if err := s.IssueTokens(ctx, storage.Issue{RotateRefreshHash: "hash-rt-0"}); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("rotating a rotated token again: err = %v, want ErrConflict", err)
	}
	next := fmt.Sprintf("hash-rt-new-%d", winner)
	if err := s.IssueTokens(ctx, storage.Issue{RotateRefreshHash: next}); err != nil {
		t.Errorf("rotating the new refresh token: %v", err)
	}
}

func testRotatingAnUnusableRefreshTokenConflicts(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	short := newToken(clk, "rt-short", storage.RefreshToken, "fam-3", "u-alice", "")
	short.ExpiresAt = clk.Now().Add(time.Hour)
	hashed := newToken(clk, "at-hashed", storage.AccessToken, "fam-4", "u-alice", "")
	hashed.Hash = "hash-at-hashed" // not a refresh token, whatever its hash
	hashed.ExpiresAt = clk.Now().Add(24 * time.Hour)
	issue(t, s,
		newToken(clk, "rt-revoked", storage.RefreshToken, "fam-1", "u-alice", ""),
		newToken(clk, "rt-family-revoked", storage.RefreshToken, "fam-2", "u-alice", ""),
		newToken(clk, "rt-rotated", storage.RefreshToken, "fam-5", "u-alice", ""),
		short, hashed)
	if err := s.RevokeToken(ctx, "rt-revoked"); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeFamily(ctx, "fam-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.IssueTokens(ctx, storage.Issue{RotateRefreshHash: "hash-rt-rotated"}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour) // rt-short expires
	for name, hash := range map[string]string{
		"revoked":         "hash-rt-revoked",
		"family-revoked":  "hash-rt-family-revoked",
		"expired":         "hash-rt-short",
		"access-token":    "hash-at-hashed",
		"unknown":         "hash-nothing",
		"already-rotated": "hash-rt-rotated",
	} {
		err := s.IssueTokens(ctx, storage.Issue{RotateRefreshHash: hash, Tokens: []storage.Token{
			newToken(clk, "rt-from-"+name, storage.RefreshToken, "fam-x", "u-alice", "")}})
		if !errors.Is(err, storage.ErrConflict) {
			t.Errorf("rotating a %s token: err = %v, want ErrConflict", name, err)
		}
		if _, err := s.TokenByID(ctx, "rt-from-"+name); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("rotating a %s token stored a new one: err = %v", name, err)
		}
	}
	for _, hash := range []string{"hash-rt-revoked", "hash-rt-family-revoked", "hash-rt-short"} {
		if tok, err := s.TokenByHash(ctx, hash); err != nil || tok.Rotated {
			t.Errorf("a refused rotation marked %s rotated: %+v, %v", hash, tok, err)
		}
	}
}

func testRevokeFamilyAndRevokeToken(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	issue(t, s,
		newToken(clk, "at-f1-a", storage.AccessToken, "fam-1", "u-alice", ""),
		newToken(clk, "rt-f1-a", storage.RefreshToken, "fam-1", "u-alice", ""),
		newToken(clk, "at-f1-b", storage.AccessToken, "fam-1", "u-alice", "sid-1"),
		newToken(clk, "at-f2-a", storage.AccessToken, "fam-2", "u-alice", ""),
		newToken(clk, "at-f2-b", storage.AccessToken, "fam-2", "u-alice", ""),
		newToken(clk, "at-f3-a", storage.AccessToken, "fam-3", "u-bob", ""),
	)
	if err := s.RevokeFamily(ctx, "fam-1"); err != nil {
		t.Fatal(err)
	}
	wantRevoked(t, s, true, "at-f1-a", "rt-f1-a", "at-f1-b")
	wantRevoked(t, s, false, "at-f2-a", "at-f2-b", "at-f3-a")
	if err := s.RevokeToken(ctx, "at-f2-a"); err != nil {
		t.Fatal(err)
	}
	wantRevoked(t, s, true, "at-f2-a")
	wantRevoked(t, s, false, "at-f2-b", "at-f3-a")
	if err := s.RevokeFamily(ctx, "fam-none"); err != nil {
		t.Errorf("revoking an unknown family: %v", err)
	}
	if err := s.RevokeToken(ctx, "at-none"); err != nil {
		t.Errorf("revoking an unknown token: %v", err)
	}
	wantRevoked(t, s, false, "at-f2-b", "at-f3-a")
}

func testSessionRoundTripAndExpiry(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	want := storage.Session{ID: "sid-1", TokenHash: "cookie-1", UserID: "u-alice", AuthTime: clk.Now().Add(-time.Minute),
		CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}
	if err := s.CreateSession(ctx, want); err != nil {
		t.Fatal(err)
	}
	for name, get := range map[string]func() (storage.Session, error){
		"ByID":        func() (storage.Session, error) { return s.SessionByID(ctx, "sid-1") },
		"ByTokenHash": func() (storage.Session, error) { return s.SessionByTokenHash(ctx, "cookie-1") },
	} {
		if got, err := get(); err != nil || got != want {
			t.Errorf("Session%s = %+v, %v; want %+v", name, got, err, want)
		}
	}
	dupID := want
	dupID.TokenHash = "cookie-2"
	dupHash := want
	dupHash.ID = "sid-2"
	for name, sess := range map[string]storage.Session{"ID": dupID, "cookie": dupHash} {
		if err := s.CreateSession(ctx, sess); !errors.Is(err, storage.ErrAlreadyExists) {
			t.Errorf("session with a taken %s: err = %v, want ErrAlreadyExists", name, err)
		}
	}
	if _, err := s.SessionByID(ctx, "cookie-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SessionByID with a cookie hash: err = %v, want ErrNotFound", err)
	}
	clk.Advance(time.Hour - time.Second)
	if _, err := s.SessionByID(ctx, "sid-1"); err != nil {
		t.Errorf("a second before the session expires: %v", err)
	}
	clk.Advance(time.Second)
	if _, err := s.SessionByID(ctx, "sid-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SessionByID at ExpiresAt: err = %v, want ErrNotFound", err)
	}
	if _, err := s.SessionByTokenHash(ctx, "cookie-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SessionByTokenHash at ExpiresAt: err = %v, want ErrNotFound", err)
	}
}

// sessionScenario stores three clients (synapse and other-rp with a
// back-channel URI, element without), alice's sessions sid-1 (tokens for
// synapse and element) and sid-2 (synapse, other-rp), bob's sid-3
// (synapse), and for each user a token outside any session.
func sessionScenario(t *testing.T, s *storage.Store, clk *clock) {
	t.Helper()
	ctx := context.Background()
	for _, c := range []storage.Client{synapse(), element(), otherRP()} {
		if _, err := s.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, sess := range []storage.Session{
		{ID: "sid-1", TokenHash: "cookie-1", UserID: "u-alice"},
		{ID: "sid-2", TokenHash: "cookie-2", UserID: "u-alice"},
		{ID: "sid-3", TokenHash: "cookie-3", UserID: "u-bob"},
	} {
		sess.AuthTime, sess.CreatedAt, sess.ExpiresAt = clk.Now(), clk.Now(), clk.Now().Add(24*time.Hour)
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	forClient := func(tok storage.Token, client string) storage.Token {
		tok.ClientID = client
		return tok
	}
	issue(t, s,
		newToken(clk, "at-s1-synapse", storage.AccessToken, "fam-1", "u-alice", "sid-1"),
		newToken(clk, "rt-s1-synapse", storage.RefreshToken, "fam-1", "u-alice", "sid-1"))
	issue(t, s, forClient(newToken(clk, "at-s1-element", storage.AccessToken, "fam-2", "u-alice", "sid-1"), "element"))
	issue(t, s, newToken(clk, "at-s2-synapse", storage.AccessToken, "fam-3", "u-alice", "sid-2"))
	issue(t, s, forClient(newToken(clk, "at-s2-other", storage.AccessToken, "fam-4", "u-alice", "sid-2"), "other-rp"))
	issue(t, s, newToken(clk, "at-alice-nosession", storage.AccessToken, "fam-5", "u-alice", ""))
	issue(t, s, newToken(clk, "at-s3-synapse", storage.AccessToken, "fam-6", "u-bob", "sid-3"))
	issue(t, s, newToken(clk, "at-bob-nosession", storage.AccessToken, "fam-7", "u-bob", ""))
}

// deliveryKeys describes deliveries as client/session/subject, sorted.
func deliveryKeys(ds []storage.Delivery) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.ClientID+"/"+d.SessionID+"/"+d.Subject)
	}
	slices.Sort(out)
	return out
}

func testEndSessionQueuesBackchannelLogout(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	sessionScenario(t, s, clk)
	clk.Advance(time.Minute)

	ended, err := s.EndSessions(ctx, "sid-1", true)
	if err != nil || !slices.Equal(ended, []storage.EndedSession{{ID: "sid-1", UserID: "u-alice"}}) {
		t.Fatalf("EndSessions(sid-1) = %+v, %v; want sid-1 of u-alice", ended, err)
	}
	if _, err := s.SessionByID(ctx, "sid-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("ended session found by ID: err = %v", err)
	}
	if _, err := s.SessionByTokenHash(ctx, "cookie-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("ended session found by cookie: err = %v", err)
	}
	for _, sid := range []string{"sid-2", "sid-3"} {
		if _, err := s.SessionByID(ctx, sid); err != nil {
			t.Errorf("ending sid-1 ended %s: %v", sid, err)
		}
	}
	wantRevoked(t, s, true, "at-s1-synapse", "rt-s1-synapse", "at-s1-element")
	wantRevoked(t, s, false, "at-s2-synapse", "at-s2-other", "at-alice-nosession", "at-s3-synapse", "at-bob-nosession")
	if err := s.IssueTokens(ctx, storage.Issue{RotateRefreshHash: "hash-rt-s1-synapse"}); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("refreshing a token of the ended session: err = %v, want ErrConflict", err)
	}
	if rows := column(t, s, `SELECT session_id FROM session_clients`); !slices.Equal(rows, []string{"sid-2", "sid-2", "sid-3"}) {
		t.Errorf("session clients left: %v; want sid-2's two and sid-3's one", rows)
	}

	if n, err := s.PendingDeliveries(ctx); err != nil || n != 1 {
		t.Fatalf("PendingDeliveries = %d, %v; want 1 (synapse only: element has no URI, other-rp was not in sid-1)", n, err)
	}
	ds, err := s.ClaimDeliveries(ctx, 10, time.Minute)
	if err != nil || len(ds) != 1 {
		t.Fatalf("ClaimDeliveries = %+v, %v; want one delivery", ds, err)
	}
	d := ds[0]
	if d.ID == "" || d.ClientID != "synapse" || d.URI != synapse().BackchannelLogoutURI || d.Subject != "u-alice" ||
		d.SessionID != "sid-1" || d.Attempts != 0 || !d.CreatedAt.Equal(clk.Now()) {
		t.Errorf("delivery = %+v; want synapse's URI, subject u-alice, session sid-1, no attempts, created now", d)
	}

	again, err := s.EndSessions(ctx, "sid-1", true)
	if err != nil || len(again) != 0 {
		t.Errorf("ending sid-1 again = %+v, %v; want nothing", again, err)
	}
	if n, err := s.PendingDeliveries(ctx); err != nil || n != 1 {
		t.Errorf("PendingDeliveries after ending sid-1 again = %d, %v; want still 1", n, err)
	}
}

func testEndSessionsOfAUserRevokesAllTheirTokens(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	sessionScenario(t, s, clk)

	ended, err := s.EndSessions(ctx, "u-alice", false)
	slices.SortFunc(ended, func(a, b storage.EndedSession) int { return cmp.Compare(a.ID, b.ID) })
	if err != nil || !slices.Equal(ended, []storage.EndedSession{{ID: "sid-1", UserID: "u-alice"}, {ID: "sid-2", UserID: "u-alice"}}) {
		t.Fatalf("EndSessions(u-alice) = %+v, %v; want sid-1 and sid-2", ended, err)
	}
	for _, sid := range []string{"sid-1", "sid-2"} {
		if _, err := s.SessionByID(ctx, sid); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ended session %s still found: err = %v", sid, err)
		}
	}
	if sess, err := s.SessionByID(ctx, "sid-3"); err != nil || sess.UserID != "u-bob" {
		t.Errorf("bob's session = %+v, %v; want it untouched", sess, err)
	}
	wantRevoked(t, s, true, "at-s1-synapse", "rt-s1-synapse", "at-s1-element", "at-s2-synapse", "at-s2-other", "at-alice-nosession")
	wantRevoked(t, s, false, "at-s3-synapse", "at-bob-nosession")
	if rows := column(t, s, `SELECT session_id FROM session_clients`); !slices.Equal(rows, []string{"sid-3"}) {
		t.Errorf("session clients left: %v; want bob's sid-3 only", rows)
	}

	ds, err := s.ClaimDeliveries(ctx, 10, time.Minute)
	want := []string{"other-rp/sid-2/u-alice", "synapse/sid-1/u-alice", "synapse/sid-2/u-alice"}
	if got := deliveryKeys(ds); err != nil || !slices.Equal(got, want) {
		t.Errorf("queued deliveries = %v, %v; want %v", got, err, want)
	}
	ids := map[string]bool{}
	for _, d := range ds {
		ids[d.ID] = true
	}
	if len(ids) != len(ds) {
		t.Errorf("deliveries share IDs: %+v", ds)
	}
	if ended, err := s.EndSessions(ctx, "u-nobody", false); err != nil || len(ended) != 0 {
		t.Errorf("ending the sessions of a user without any = %+v, %v", ended, err)
	}
}

// queueDeliveries queues one back-channel notice to synapse for each of n
// new sessions and returns their session IDs.
func queueDeliveries(t *testing.T, s *storage.Store, clk *clock, n int) []string {
	t.Helper()
	ctx := context.Background()
	if _, err := s.CreateClient(ctx, synapse()); err != nil {
		t.Fatal(err)
	}
	var sids []string
	for i := range n {
		sid := fmt.Sprintf("sid-%02d", i)
		user := fmt.Sprintf("u-%02d", i)
		if err := s.CreateSession(ctx, storage.Session{ID: sid, TokenHash: "cookie-" + sid, UserID: user,
			AuthTime: clk.Now(), CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		issue(t, s, newToken(clk, "at-"+sid, storage.AccessToken, "fam-"+sid, user, sid))
		if _, err := s.EndSessions(ctx, sid, true); err != nil {
			t.Fatal(err)
		}
		sids = append(sids, sid)
	}
	if got, err := s.PendingDeliveries(ctx); err != nil || got != n {
		t.Fatalf("PendingDeliveries = %d, %v; want %d", got, err, n)
	}
	return sids
}

func sessionsOf(ds []storage.Delivery) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.SessionID)
	}
	slices.Sort(out)
	return out
}

func testClaimDeliveriesLeasesThem(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	sids := queueDeliveries(t, s, clk, 3)

	first, err := s.ClaimDeliveries(ctx, 2, time.Minute)
	if err != nil || len(first) != 2 {
		t.Fatalf("claim with limit 2 = %+v, %v; want 2 deliveries", first, err)
	}
	rest, err := s.ClaimDeliveries(ctx, 10, time.Minute)
	if err != nil || len(rest) != 1 {
		t.Fatalf("second claim = %+v, %v; want the 1 left", rest, err)
	}
	if got := sessionsOf(append(first, rest...)); !slices.Equal(got, sids) {
		t.Errorf("claimed %v; want each of %v once", got, sids)
	}
	if none, err := s.ClaimDeliveries(ctx, 10, time.Minute); err != nil || len(none) != 0 {
		t.Errorf("claim while all are leased = %+v, %v; want none", none, err)
	}
	clk.Advance(time.Minute - time.Second)
	if none, err := s.ClaimDeliveries(ctx, 10, time.Minute); err != nil || len(none) != 0 {
		t.Errorf("claim a second before the lease ends = %+v, %v; want none", none, err)
	}
	clk.Advance(time.Second)
	again, err := s.ClaimDeliveries(ctx, 10, time.Minute)
	if got := sessionsOf(again); err != nil || !slices.Equal(got, sids) {
		t.Errorf("claim after the lease = %v, %v; want all of %v again", got, err, sids)
	}
	for _, d := range again {
		if d.Attempts != 0 {
			t.Errorf("a lease counted as an attempt: %+v", d)
		}
	}
	if n, err := s.PendingDeliveries(ctx); err != nil || n != 3 {
		t.Errorf("PendingDeliveries = %d, %v; claims must not remove deliveries", n, err)
	}
}

func testDeliveryFailedAndDone(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	queueDeliveries(t, s, clk, 3)
	t0 := clk.Now()
	ds, err := s.ClaimDeliveries(ctx, 10, time.Minute)
	if err != nil || len(ds) != 3 {
		t.Fatalf("ClaimDeliveries = %+v, %v; want 3", ds, err)
	}
	slices.SortFunc(ds, func(a, b storage.Delivery) int { return cmp.Compare(a.SessionID, b.SessionID) })
	failed, done, leased := ds[0], ds[1], ds[2]
	if err := s.DeliveryFailed(ctx, failed.ID, t0.Add(5*time.Minute), "connection refused"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeliveryDone(ctx, done.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PendingDeliveries(ctx); err != nil || n != 2 {
		t.Errorf("PendingDeliveries after one done = %d, %v; want 2", n, err)
	}

	clk.Advance(time.Minute) // the leases end; the failed one waits for its next time
	got, err := s.ClaimDeliveries(ctx, 10, 10*time.Minute)
	if err != nil || len(got) != 1 || got[0].ID != leased.ID {
		t.Fatalf("claim after the lease = %+v, %v; want only %s", got, err, leased.SessionID)
	}
	clk.Advance(4*time.Minute - time.Second)
	if got, err := s.ClaimDeliveries(ctx, 10, time.Minute); err != nil || len(got) != 0 {
		t.Errorf("claim a second before the retry time = %+v, %v; want none", got, err)
	}
	clk.Advance(time.Second)
	got, err = s.ClaimDeliveries(ctx, 10, time.Minute)
	if err != nil || len(got) != 1 || got[0].ID != failed.ID || got[0].Attempts != 1 ||
		got[0].SessionID != failed.SessionID || !got[0].CreatedAt.Equal(t0) {
		t.Fatalf("claim at the retry time = %+v, %v; want %s with 1 attempt", got, err, failed.SessionID)
	}
	if err := s.DeliveryFailed(ctx, failed.ID, clk.Now(), "HTTP 503"); err != nil {
		t.Fatal(err)
	}
	got, err = s.ClaimDeliveries(ctx, 10, time.Minute)
	if err != nil || len(got) != 1 || got[0].ID != failed.ID || got[0].Attempts != 2 {
		t.Errorf("claim after a second failure = %+v, %v; want %s with 2 attempts", got, err, failed.SessionID)
	}
	for _, d := range []storage.Delivery{failed, leased} {
		if err := s.DeliveryDone(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.PendingDeliveries(ctx); err != nil || n != 0 {
		t.Errorf("PendingDeliveries after all done = %d, %v; want 0", n, err)
	}
}

func testConcurrentClaimsNeverShareADelivery(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	const total, workers = 40, 8
	queueDeliveries(t, s, clk, total)

	claimed := make([][]string, workers)
	race(workers, func(i int) {
		// Each claim that returns anything takes at least one of total
		// deliveries, so a worker needs at most total+1 claims.
		for range total + 1 {
			ds, err := s.ClaimDeliveries(ctx, 3, time.Hour)
			if err != nil {
				t.Errorf("worker %d: %v", i, err)
				return
			}
			if len(ds) == 0 {
				return
			}
			for _, d := range ds {
				claimed[i] = append(claimed[i], d.ID)
			}
		}
		t.Errorf("worker %d still claims deliveries after %d claims: claims are not leased", i, total+1)
	})
	by := map[string]int{}
	for i, ids := range claimed {
		for _, id := range ids {
			if prev, ok := by[id]; ok {
				t.Errorf("delivery %s claimed by workers %d and %d", id, prev, i)
			}
			by[id] = i
		}
	}
	if len(by) != total {
		t.Errorf("%d workers claimed %d distinct deliveries; want all %d", workers, len(by), total)
	}
}

func testPurgeRemovesOnlyWhatExpired(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	t0 := clk.Now()

	// Requests: ExpiresAt and (once a code is issued) CodeExpiresAt.
	request := func(id string, expires time.Duration, code time.Duration) {
		t.Helper()
		a := authRequest(id, clk)
		a.ExpiresAt = t0.Add(expires)
		if err := s.CreateAuthRequest(ctx, a); err != nil {
			t.Fatal(err)
		}
		if code == 0 {
			return
		}
		if err := s.CompleteAuthRequest(ctx, id, "u-alice", "", t0, []string{"pwd"}); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveAuthCode(ctx, id, "code-"+id, t0.Add(code)); err != nil {
			t.Fatal(err)
		}
	}
	request("ar-expired", 10*time.Minute, 0)
	request("ar-both-expired", 10*time.Minute, 5*time.Minute)
	request("ar-code-outlives", 10*time.Minute, 20*time.Minute)
	request("ar-live", time.Hour, time.Minute)
	request("ar-live-no-code", time.Hour, 0)

	for _, sess := range []storage.Session{
		{ID: "sid-expired", TokenHash: "cookie-expired", UserID: "u-alice", ExpiresAt: t0.Add(10 * time.Minute)},
		{ID: "sid-live", TokenHash: "cookie-live", UserID: "u-alice", ExpiresAt: t0.Add(time.Hour)},
	} {
		sess.AuthTime, sess.CreatedAt = t0, t0
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	expired := newToken(clk, "at-expired", storage.AccessToken, "fam-1", "u-alice", "")
	expired.ExpiresAt = t0.Add(10 * time.Minute)
	revokedLive := newToken(clk, "at-revoked-live", storage.AccessToken, "fam-2", "u-alice", "")
	issue(t, s, expired, revokedLive,
		newToken(clk, "at-sid-expired", storage.AccessToken, "fam-3", "u-alice", "sid-expired"),
		newToken(clk, "at-sid-live", storage.AccessToken, "fam-4", "u-alice", "sid-live"),
		newToken(clk, "at-sid-gone", storage.AccessToken, "fam-5", "u-alice", "sid-gone"), // a session that no longer exists
		newToken(clk, "rt-live", storage.RefreshToken, "fam-6", "u-alice", ""))
	if err := s.RevokeToken(ctx, "at-revoked-live"); err != nil {
		t.Fatal(err)
	}

	if n, err := s.Purge(ctx); err != nil || n != 1 {
		t.Errorf("Purge before anything expired = %d, %v; want 1 (the orphaned session client of sid-gone)", n, err)
	}
	clk.Advance(10 * time.Minute)
	n, err := s.Purge(ctx)
	// ar-expired, ar-both-expired, at-expired, sid-expired and its session client.
	if err != nil || n != 5 {
		t.Errorf("Purge = %d, %v; want 5 rows", n, err)
	}
	check := func(what, query string, want ...string) {
		t.Helper()
		if got := column(t, s, query); !slices.Equal(got, want) {
			t.Errorf("%s after Purge = %v; want %v", what, got, want)
		}
	}
	check("auth requests", `SELECT id FROM auth_requests`, "ar-code-outlives", "ar-live", "ar-live-no-code")
	check("tokens", `SELECT id FROM tokens`, "at-revoked-live", "at-sid-expired", "at-sid-gone", "at-sid-live", "rt-live")
	check("sessions", `SELECT id FROM sessions`, "sid-live")
	check("session clients", `SELECT session_id FROM session_clients`, "sid-live")
	if n, err := s.Purge(ctx); err != nil || n != 0 {
		t.Errorf("second Purge = %d, %v; want 0", n, err)
	}

	clk.Advance(10 * time.Minute) // ar-code-outlives' code expires now
	if n, err := s.Purge(ctx); err != nil || n != 1 {
		t.Errorf("Purge when the code expired = %d, %v; want 1", n, err)
	}
	check("auth requests", `SELECT id FROM auth_requests`, "ar-live", "ar-live-no-code")
}
