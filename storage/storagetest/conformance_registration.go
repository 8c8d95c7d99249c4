package storagetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage"
)

// Dynamic clients (RFC 7591): what they said about themselves round-trips,
// and the ones nobody uses are counted and purged.

// dynamicClient is a native client that registered itself.
func dynamicClient(id string) storage.Client {
	return storage.Client{
		ID: id, Name: "Example Chat", Public: true, Dynamic: true, ApplicationType: storage.ApplicationNative,
		RedirectURIs: []string{"com.example.chat:/callback", "http://127.0.0.1/callback"},
		ClientURI:    "https://example.com/", LogoURI: "https://example.com/logo.png",
		TOSURI: "https://example.com/tos", PolicyURI: "https://app.example.com/privacy",
		IDTokenAlg: "ES256", UserinfoAlg: "EdDSA",
	}
}

func testDynamicClientMetadataRoundTrips(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	want := dynamicClient("dyn-1")
	if _, err := s.CreateClient(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClientByID(ctx, "dyn-1")
	if err != nil {
		t.Fatal(err)
	}
	want.CreatedAt, want.UpdatedAt, want.PostLogoutRedirectURIs = clk.Now(), clk.Now(), []string{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ClientByID = %+v\nwant %+v", got, want)
	}
	clk.Advance(time.Minute)
	if _, err := s.UpdateClient(ctx, "dyn-1", func(c *storage.Client) error { c.Name = "Renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	got, _ = s.ClientByID(ctx, "dyn-1")
	want.Name, want.UpdatedAt = "Renamed", clk.Now()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after an update of the name: %+v\nwant %+v", got, want)
	}

	// An operator's client is not dynamic, and a web application.
	if _, err := s.CreateClient(ctx, synapse()); err != nil {
		t.Fatal(err)
	}
	op, _ := s.ClientByID(ctx, "synapse")
	if op.Dynamic || op.ApplicationType != storage.ApplicationWeb || op.ClientURI != "" || op.LogoURI != "" ||
		op.IDTokenAlg != storage.DefaultIDTokenAlg || op.UserinfoAlg != "" {
		t.Errorf("operator client: dynamic %v, application type %q, client_uri %q, logo_uri %q, algorithms %q %q; want false, web, none, RS256 and none",
			op.Dynamic, op.ApplicationType, op.ClientURI, op.LogoURI, op.IDTokenAlg, op.UserinfoAlg)
	}
	list, err := s.ListClients(ctx)
	if err != nil || len(list) != 2 || !list[0].Dynamic || list[0].ApplicationType != storage.ApplicationNative || list[1].Dynamic {
		t.Errorf("ListClients = %+v, %v", list, err)
	}
}

func testUnusedDynamicClientsAreCountedAndPurged(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	t0 := clk.Now()
	create := func(c storage.Client) {
		t.Helper()
		if _, err := s.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	count := func(want int, when string) {
		t.Helper()
		if n, err := s.CountUnusedDynamicClients(ctx); err != nil || n != want {
			t.Errorf("%s: CountUnusedDynamicClients = %d, %v; want %d", when, n, err, want)
		}
	}
	for _, id := range []string{"dyn-unused", "dyn-requested", "dyn-token", "dyn-device"} {
		create(dynamicClient(id))
	}
	operator := synapse()
	operator.ID = "operator-unused"
	create(operator)
	count(4, "four dynamic clients, none used yet")

	// dyn-requested has an authorization request, until it expires.
	a := authRequest("ar-1", clk)
	a.ClientID, a.ExpiresAt = "dyn-requested", t0.Add(90*time.Minute)
	if err := s.CreateAuthRequest(ctx, a); err != nil {
		t.Fatal(err)
	}
	// dyn-token holds a token, which expires after 2 hours.
	tok := newToken(clk, "at-1", storage.AccessToken, "fam-1", "u-alice", "")
	tok.ClientID, tok.ExpiresAt = "dyn-token", t0.Add(2*time.Hour)
	issue(t, s, tok)
	// dyn-device has a Matrix device, which stays until it is deleted in Synapse.
	if err := s.ReserveMatrixDevice(ctx, storage.MatrixDevice{FamilyID: "fam-2", UserID: "u-alice", Localpart: "alice",
		DeviceID: "DEVICE", ClientID: "dyn-device"}); err != nil {
		t.Fatal(err)
	}
	// A consent for the unused client goes with it.
	if err := s.SaveConsent(ctx, "u-alice", "dyn-unused", []string{"openid"}); err != nil {
		t.Fatal(err)
	}
	count(1, "one of four unused")

	clk.Advance(30 * time.Minute)
	create(dynamicClient("dyn-young"))
	count(2, "a young one registered")
	if _, err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if got := column(t, s, `SELECT id FROM clients`); !reflect.DeepEqual(got, []string{"dyn-device", "dyn-requested", "dyn-token", "dyn-unused", "dyn-young", "operator-unused"}) {
		t.Errorf("after a purge 30 minutes in: %v; want every client (none unused for an hour)", got)
	}

	clk.Advance(31 * time.Minute)
	if _, err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if got := column(t, s, `SELECT id FROM clients`); !reflect.DeepEqual(got, []string{"dyn-device", "dyn-requested", "dyn-token", "dyn-young", "operator-unused"}) {
		t.Errorf("after a purge 61 minutes in: %v; want dyn-unused gone, the young one, the used ones and the operator's kept", got)
	}
	if got, _ := s.ConsentedScopes(ctx, "u-alice", "dyn-unused"); got != nil {
		t.Errorf("the purged client's consent stayed: %v", got)
	}
	if _, err := s.ClientByID(ctx, "dyn-unused"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("purged client: %v, want ErrNotFound", err)
	}

	// The request expires at 90 minutes, the token at 2 hours: each client
	// goes in the purge that removes its last use.
	clk.Advance(30 * time.Minute)
	if _, err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if got := column(t, s, `SELECT id FROM clients`); !reflect.DeepEqual(got, []string{"dyn-device", "dyn-token", "operator-unused"}) {
		t.Errorf("after a purge 91 minutes in: %v; want dyn-requested (request expired) and dyn-young gone", got)
	}
	clk.Advance(30 * time.Minute)
	if _, err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if got := column(t, s, `SELECT id FROM clients`); !reflect.DeepEqual(got, []string{"dyn-device", "operator-unused"}) {
		t.Errorf("after a purge 2 hours in: %v; want dyn-token gone with its token", got)
	}
	count(0, "the device's client is in use")
	if err := s.DeleteMatrixDevice(ctx, "fam-2"); err != nil {
		t.Fatal(err)
	}
	count(1, "its device deleted")
	if _, err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if got := column(t, s, `SELECT id FROM clients`); !reflect.DeepEqual(got, []string{"operator-unused"}) {
		t.Errorf("after its device went: %v; want the operator's client alone", got)
	}
}
