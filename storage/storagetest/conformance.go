package storagetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage"
)

// Opener returns a migrated, empty store that uses the given options.
type Opener func(t *testing.T, opts storage.Options) *storage.Store

// Conformance runs the storage test suite against one backend. Every
// backend runs exactly these tests; a behaviour that differs between
// SQLite and PostgreSQL is a bug in the dialect layer.
func Conformance(t *testing.T, open Opener) {
	tests := []struct {
		name string
		run  func(t *testing.T, open Opener)
	}{
		{"MigrateIsIdempotent", testMigrateIsIdempotent},
		{"ConsentIsRememberedReplacedAndDeletedWithTheUser", testConsentIsRememberedReplacedAndDeletedWithTheUser},
		{"ClientNameRoundTrips", testClientNameRoundTrips},
		{"SearchUsersMatchesUsernamePrefixOrDisplayNameIgnoringCase", testSearchUsersMatchesUsernamePrefixOrDisplayNameIgnoringCase},
		{"SearchIndexFollowsChangesAndRebuilds", testSearchIndexFollowsChangesAndRebuilds},
		{"UsersByThreePIDsFindsEveryAddressInBatches", testUsersByThreePIDsFindsEveryAddressInBatches},
		{"UserRoundTrip", testUserRoundTrip},
		{"UserUniqueness", testUserUniqueness},
		{"UserUpdate", testUserUpdate},
		{"UserConcurrentUpdatesLoseNothing", testUserConcurrentUpdates},
		{"UserDelete", testUserDelete},
		{"ClientRoundTrip", testClientRoundTrip},
		{"ClientUpdateAndDelete", testClientUpdateAndDelete},
		{"DynamicClientMetadataRoundTrips", testDynamicClientMetadataRoundTrips},
		{"UnusedDynamicClientsAreCountedAndPurged", testUnusedDynamicClientsAreCountedAndPurged},
		{"KeyRingCompareAndSwap", testKeyRingCompareAndSwap},
		{"KeyRingParallelRotationsOneWins", testKeyRingParallelRotations},
		{"AuthRequestRoundTrip", testAuthRequestRoundTrip},
		{"ExpiredAuthRequestIsNotFound", testExpiredAuthRequestIsNotFound},
		{"CompleteAuthRequestRecordsTheLogin", testCompleteAuthRequestRecordsTheLogin},
		{"AuthCodeNeedsACompletedRequest", testAuthCodeNeedsACompletedRequest},
		{"AuthRequestByCodeHashUntilTheCodeExpires", testAuthRequestByCodeHashUntilTheCodeExpires},
		{"AuthRequestWithSessionReadsBothInOneStatement", testAuthRequestWithSession},
		{"CodeExchangeIsSingleUseUnderConcurrency", testCodeExchangeIsSingleUseUnderConcurrency},
		{"CodeExchangeIsAllOrNothing", testCodeExchangeIsAllOrNothing},
		{"TokenRoundTrip", testTokenRoundTrip},
		{"RefreshRotationIsSingleUseUnderConcurrency", testRefreshRotationIsSingleUseUnderConcurrency},
		{"RotatingAnUnusableRefreshTokenConflicts", testRotatingAnUnusableRefreshTokenConflicts},
		{"RevokeFamilyAndRevokeToken", testRevokeFamilyAndRevokeToken},
		{"SessionRoundTripAndExpiry", testSessionRoundTripAndExpiry},
		{"EndSessionQueuesBackchannelLogout", testEndSessionQueuesBackchannelLogout},
		{"EndSessionsOfAUserRevokesAllTheirTokens", testEndSessionsOfAUserRevokesAllTheirTokens},
		{"ClaimDeliveriesLeasesThem", testClaimDeliveriesLeasesThem},
		{"DeliveryFailedAndDone", testDeliveryFailedAndDone},
		{"ConcurrentClaimsNeverShareADelivery", testConcurrentClaimsNeverShareADelivery},
		{"PurgeRemovesOnlyWhatExpired", testPurgeRemovesOnlyWhatExpired},
		{"ThrottleAdmitsNoMoreThanTheBurstUnderConcurrency", testThrottleAdmitsNoMoreThanTheBurstUnderConcurrency},
		{"ThrottleLetsParallelRightPasswordsThrough", testThrottleLetsParallelRightPasswordsThrough},
		{"ThrottleDelaysGrowAndSuccessOrTimeForgets", testThrottleDelaysGrowAndSuccessOrTimeForgets},
		{"ThrottleForgetsAbandonedChecks", testThrottleForgetsAbandonedChecks},
		{"ThrottleAdmitsAndFinishesManyKeysInOneStatement", testThrottleManyKeys},
		{"ThrottleStatementsOverSharedKeysNeverFail", testThrottleStatementsOverSharedKeysNeverFail},
		{"AuditEventsFilterAndPurge", testAuditEventsFilterAndPurge},
		{"RepeatedAuditEventsAreCountedInOneRowPerWindow", testRepeatedAuditEventsAreCountedInOneRowPerWindow},
		{"MatrixDevicesLiveWhileTheirFamilyHasALiveToken", testMatrixDevicesLiveWhileTheirFamilyHasALiveToken},
		{"PasswordLoginIsAllowedUntilRefusedPerAccount", testPasswordLoginIsAllowedUntilRefusedPerAccount},
		{"LoginTokensAreSingleUseAndExpire", testLoginTokensAreSingleUseAndExpire},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open) })
	}
}

// clock is a settable time source for tests.
type clock struct{ unix atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.unix.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Unix())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(c.unix.Load(), 0).UTC() }
func (c *clock) Advance(d time.Duration) { c.unix.Add(int64(d / time.Second)) }

func testMigrateIsIdempotent(t *testing.T, open Opener) {
	s := open(t, storage.Options{})
	ctx := context.Background()
	n, err := s.Migrate(ctx)
	if err != nil || n != 0 {
		t.Fatalf("second Migrate = %d, %v; want 0 migrations, no error", n, err)
	}
	current, latest, err := s.SchemaVersion(ctx)
	if err != nil || current != latest || latest < 1 {
		t.Fatalf("SchemaVersion = %d, %d, %v; want current == latest >= 1", current, latest, err)
	}
}

func alice() storage.User {
	return storage.User{ID: "u-alice", Username: "alice", Email: "alice@example.org", EmailVerified: true,
		DisplayName: "Alice Liddell", MSISDN: "447700900123", AvatarURL: "mxc://example.org/AvatarAlice",
		PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA"}
}

func testUserRoundTrip(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	want := alice()
	created, err := s.CreateUser(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	want.CreatedAt, want.UpdatedAt = clk.Now(), clk.Now()
	if created != want {
		t.Errorf("CreateUser returned %+v, want %+v", created, want)
	}
	for name, get := range map[string]func() (storage.User, error){
		"ByID":       func() (storage.User, error) { return s.UserByID(ctx, "u-alice") },
		"ByUsername": func() (storage.User, error) { return s.UserByUsername(ctx, "alice") },
		"ByEmail":    func() (storage.User, error) { return s.UserByEmail(ctx, "alice@example.org") },
		"ByMSISDN":   func() (storage.User, error) { return s.UserByMSISDN(ctx, "447700900123") },
	} {
		got, err := get()
		if err != nil || got != want {
			t.Errorf("%s = %+v, %v; want %+v", name, got, err, want)
		}
	}
	for name, get := range map[string]func() (storage.User, error){
		"ByID":       func() (storage.User, error) { return s.UserByID(ctx, "nobody") },
		"ByUsername": func() (storage.User, error) { return s.UserByUsername(ctx, "Alice") },
		"ByEmail":    func() (storage.User, error) { return s.UserByEmail(ctx, "") },
		"ByMSISDN":   func() (storage.User, error) { return s.UserByMSISDN(ctx, "") },
	} {
		if _, err := get(); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s of a missing user: err = %v, want ErrNotFound", name, err)
		}
	}
}

func testUserUniqueness(t *testing.T, open Opener) {
	s := open(t, storage.Options{})
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, alice()); err != nil {
		t.Fatal(err)
	}
	dupName := alice()
	dupName.ID, dupName.Email, dupName.MSISDN = "u-2", "other@example.org", ""
	dupMail := alice()
	dupMail.ID, dupMail.Username, dupMail.MSISDN = "u-3", "alice2", ""
	dupID := alice()
	dupID.Username, dupID.Email, dupID.MSISDN = "alice3", "", ""
	dupPhone := alice()
	dupPhone.ID, dupPhone.Username, dupPhone.Email = "u-4", "alice4", ""
	for name, u := range map[string]storage.User{"username": dupName, "email": dupMail, "id": dupID, "msisdn": dupPhone} {
		if _, err := s.CreateUser(ctx, u); !errors.Is(err, storage.ErrAlreadyExists) {
			t.Errorf("duplicate %s: err = %v, want ErrAlreadyExists", name, err)
		}
	}
	// Users without an address do not collide with each other.
	for i := range 3 {
		u := storage.User{ID: fmt.Sprintf("u-none-%d", i), Username: fmt.Sprintf("none%d", i)}
		if _, err := s.CreateUser(ctx, u); err != nil {
			t.Errorf("user %d without e-mail or phone: %v", i, err)
		}
	}
	users, err := s.ListUsers(ctx)
	if err != nil || len(users) != 4 || users[0].Username != "alice" || users[3].Username != "none2" {
		t.Errorf("ListUsers = %v, %v; want alice, none0..none2 in order", users, err)
	}
	if n, err := s.CountUsers(ctx); err != nil || n != 4 {
		t.Errorf("CountUsers = %d, %v; want 4", n, err)
	}
}

func testUserUpdate(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, alice()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	got, err := s.UpdateUser(ctx, "u-alice", func(u *storage.User) error {
		u.Disabled = true
		u.PasswordHash = "new"
		u.ID = "ignored" // the ID never changes
		return nil
	})
	if err != nil || !got.Disabled || got.ID != "u-alice" || !got.UpdatedAt.Equal(clk.Now()) {
		t.Fatalf("UpdateUser = %+v, %v", got, err)
	}
	stored, _ := s.UserByID(ctx, "u-alice")
	if stored != got {
		t.Errorf("stored %+v, UpdateUser returned %+v", stored, got)
	}

	refuse := errors.New("refused")
	if _, err := s.UpdateUser(ctx, "u-alice", func(u *storage.User) error {
		u.Disabled = false
		return refuse
	}); !errors.Is(err, refuse) {
		t.Errorf("update whose closure fails: err = %v, want the closure's error", err)
	}
	if after, _ := s.UserByID(ctx, "u-alice"); !after.Disabled {
		t.Error("a failed update changed the user")
	}
	if _, err := s.UpdateUser(ctx, "nobody", func(*storage.User) error { return nil }); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("update of a missing user: err = %v, want ErrNotFound", err)
	}

	bob := storage.User{ID: "u-bob", Username: "bob", Email: "bob@example.org"}
	if _, err := s.CreateUser(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateUser(ctx, "u-bob", func(u *storage.User) error {
		u.Email = "alice@example.org"
		return nil
	}); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Errorf("taking another user's e-mail: err = %v, want ErrAlreadyExists", err)
	}
}

// testUserConcurrentUpdates runs read-modify-write updates in parallel; if
// UpdateUser did not lock the row, increments would be lost.
func testUserConcurrentUpdates(t *testing.T, open Opener) {
	s := open(t, storage.Options{})
	ctx := context.Background()
	u := alice()
	u.DisplayName = "0"
	if _, err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				_, err := s.UpdateUser(ctx, "u-alice", func(u *storage.User) error {
					n, err := strconv.Atoi(u.DisplayName)
					u.DisplayName = strconv.Itoa(n + 1)
					return err
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent update: %v", err)
	}
	got, _ := s.UserByID(ctx, "u-alice")
	if got.DisplayName != strconv.Itoa(workers*each) {
		t.Errorf("after %d increments the counter is %s: updates were lost", workers*each, got.DisplayName)
	}
}

func testUserDelete(t *testing.T, open Opener) {
	s := open(t, storage.Options{})
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, alice()); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "u-alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByID(ctx, "u-alice"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleted user still found: %v", err)
	}
	if err := s.DeleteUser(ctx, "u-alice"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}
	// The username and address are free again (the new account gets a new ID).
	again := alice()
	again.ID = "u-alice-2"
	if _, err := s.CreateUser(ctx, again); err != nil {
		t.Errorf("re-creating a deleted username: %v", err)
	}
}

func synapse() storage.Client {
	return storage.Client{
		ID:                   "synapse",
		SecretHash:           "sha256$abc",
		RedirectURIs:         []string{"https://matrix.example.org/_synapse/client/oidc/callback"},
		BackchannelLogoutURI: "https://matrix.example.org/_synapse/client/oidc/backchannel_logout",
		SkipConsent:          true,
	}
}

func testClientRoundTrip(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	if _, err := s.CreateClient(ctx, synapse()); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClientByID(ctx, "synapse")
	if err != nil {
		t.Fatal(err)
	}
	want := synapse()
	if got.ID != want.ID || got.SecretHash != want.SecretHash || got.Public || !got.SkipConsent ||
		got.BackchannelLogoutURI != want.BackchannelLogoutURI || !got.CreatedAt.Equal(clk.Now()) ||
		fmt.Sprint(got.RedirectURIs) != fmt.Sprint(want.RedirectURIs) ||
		got.PostLogoutRedirectURIs == nil || len(got.PostLogoutRedirectURIs) != 0 {
		t.Errorf("ClientByID = %+v, want %+v with an empty (non-nil) post-logout list", got, want)
	}
	if _, err := s.CreateClient(ctx, synapse()); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Errorf("duplicate client: err = %v, want ErrAlreadyExists", err)
	}
	public := storage.Client{ID: "element", Public: true, RedirectURIs: []string{"https://app.example.org/", "http://127.0.0.1/cb"}}
	if _, err := s.CreateClient(ctx, public); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListClients(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "element" || !list[0].Public || len(list[0].RedirectURIs) != 2 {
		t.Errorf("ListClients = %+v, %v", list, err)
	}
	if _, err := s.ClientByID(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("missing client: err = %v, want ErrNotFound", err)
	}
}

func testClientUpdateAndDelete(t *testing.T, open Opener) {
	s := open(t, storage.Options{})
	ctx := context.Background()
	if _, err := s.CreateClient(ctx, synapse()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateClient(ctx, "synapse", func(c *storage.Client) error {
		c.SecretHash = "sha256$new"
		c.PostLogoutRedirectURIs = []string{"https://app.example.org/logged-out"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.ClientByID(ctx, "synapse")
	if got.SecretHash != "sha256$new" || len(got.PostLogoutRedirectURIs) != 1 || len(got.RedirectURIs) != 1 {
		t.Errorf("after update: %+v", got)
	}
	if err := s.DeleteClient(ctx, "synapse"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteClient(ctx, "synapse"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateClient(ctx, "synapse", func(*storage.Client) error { return nil }); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("update of a deleted client: err = %v, want ErrNotFound", err)
	}
}

func key(id string, signFrom time.Time) storage.SigningKey {
	return storage.SigningKey{ID: id, Algorithm: "RS256", PublicJWK: `{"kid":"` + id + `"}`,
		PrivateSealed: []byte{0, 1, 2, 255}, CreatedAt: signFrom.Add(-time.Minute), SignFrom: signFrom}
}

func testKeyRingCompareAndSwap(t *testing.T, open Opener) {
	s := open(t, storage.Options{})
	ctx := context.Background()
	v, keys, err := s.KeyRing(ctx)
	if err != nil || v != 0 || len(keys) != 0 {
		t.Fatalf("empty ring = %d, %v, %v", v, keys, err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if v, err = s.ChangeKeyRing(ctx, 0, []storage.SigningKey{key("k1", t0)}, nil); err != nil || v != 1 {
		t.Fatalf("first key: %d, %v", v, err)
	}
	if _, err := s.ChangeKeyRing(ctx, 0, []storage.SigningKey{key("k-stale", t0)}, nil); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("change from a stale version: err = %v, want ErrConflict", err)
	}
	if v, err = s.ChangeKeyRing(ctx, 1, []storage.SigningKey{key("k2", t0.Add(time.Hour))}, nil); err != nil || v != 2 {
		t.Fatalf("second key: %d, %v", v, err)
	}
	if v, err = s.ChangeKeyRing(ctx, 2, []storage.SigningKey{key("k3", t0.Add(2*time.Hour))}, []string{"k1"}); err != nil || v != 3 {
		t.Fatalf("third key: %d, %v", v, err)
	}
	v, keys, err = s.KeyRing(ctx)
	if err != nil || v != 3 || len(keys) != 2 || keys[0].ID != "k2" || keys[1].ID != "k3" {
		t.Fatalf("ring = %d, %+v, %v; want version 3 with k2, k3", v, keys, err)
	}
	want := key("k3", t0.Add(2*time.Hour))
	got := keys[1]
	if got.Algorithm != want.Algorithm || got.PublicJWK != want.PublicJWK || string(got.PrivateSealed) != string(want.PrivateSealed) ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.SignFrom.Equal(want.SignFrom) {
		t.Errorf("stored key %+v, want %+v", got, want)
	}
	if cur, err := s.KeyRingVersion(ctx); err != nil || cur != 3 {
		t.Errorf("KeyRingVersion = %d, %v; want 3", cur, err)
	}
}

func testKeyRingParallelRotations(t *testing.T, open Opener) {
	s := open(t, storage.Options{})
	ctx := context.Background()
	const n = 8
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.ChangeKeyRing(ctx, 0, []storage.SigningKey{key(fmt.Sprintf("k%d", i), time.Now())}, nil)
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, storage.ErrConflict):
				t.Errorf("rotation %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	_, keys, err := s.KeyRing(ctx)
	if wins.Load() != 1 || err != nil || len(keys) != 1 {
		t.Errorf("%d parallel rotations from one version: %d won, ring has %d keys (%v); want exactly 1", n, wins.Load(), len(keys), err)
	}
}
