package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage"
)

// testMatrixDevicesLiveWhileTheirFamilyHasALiveToken: a device is one
// user's, once; it is live while a token of its family can be used, and
// dead (for the cleanup, after the reservation grace) once none can.
func testMatrixDevicesLiveWhileTheirFamilyHasALiveToken(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	dev := func(family, user, device string) storage.MatrixDevice {
		return storage.MatrixDevice{FamilyID: family, UserID: user, Localpart: "l-" + user, DeviceID: device, ClientID: "synapse"}
	}
	for _, d := range []storage.MatrixDevice{dev("f1", "u1", "DEV1"), dev("f2", "u1", "DEV2"), dev("f3", "u2", "DEV1")} {
		if err := s.ReserveMatrixDevice(ctx, d); err != nil {
			t.Fatalf("reserve %+v: %v", d, err)
		}
	}
	if err := s.ReserveMatrixDevice(ctx, dev("f4", "u1", "DEV1")); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("a device ID the user holds reserved again: %v, want ErrAlreadyExists", err)
	}
	if err := s.ReserveMatrixDevice(ctx, dev("f1", "u1", "DEV9")); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("a second device for one authorization: %v, want ErrAlreadyExists", err)
	}
	// No token yet: not live, but too young to be dead.
	if live, err := s.MatrixDevices(ctx, "u1"); err != nil || len(live) != 0 {
		t.Fatalf("live devices before any token: %v, %v", live, err)
	}
	if dead, err := s.DeadMatrixDevices(ctx, clk.Now().Add(-time.Minute), 10); err != nil || len(dead) != 0 {
		t.Fatalf("dead devices within the grace: %v, %v", dead, err)
	}
	issue(t, s, newToken(clk, "a1", storage.AccessToken, "f1", "u1", ""), newToken(clk, "r1", storage.RefreshToken, "f1", "u1", ""),
		newToken(clk, "a2", storage.AccessToken, "f2", "u1", ""))
	live, err := s.MatrixDevices(ctx, "u1")
	if err != nil || len(live) != 2 {
		t.Fatalf("live devices of u1: %v, %v; want DEV1 and DEV2", live, err)
	}
	clk.Advance(2 * time.Hour) // f2's only token, an access token, expired; f1 has its refresh token
	if err := s.SeeMatrixDevice(ctx, "f1", clk.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	live, _ = s.MatrixDevices(ctx, "u1")
	if len(live) != 1 || live[0].DeviceID != "DEV1" || !live[0].LastSeenAt.Equal(clk.Now()) || live[0].Localpart != "l-u1" {
		t.Fatalf("after f2 expired: %+v; want DEV1 alone, seen now", live)
	}
	dead, err := s.DeadMatrixDevices(ctx, clk.Now().Add(-time.Minute), 10)
	if err != nil || len(dead) != 2 || dead[0].FamilyID == "f1" || dead[1].FamilyID == "f1" {
		t.Fatalf("dead devices: %+v, %v; want f2 and f3 (which never got a token)", dead, err)
	}
	if err := s.RevokeFamily(ctx, "f1"); err != nil {
		t.Fatal(err)
	}
	if dead, _ := s.DeadMatrixDevices(ctx, clk.Now().Add(-time.Minute), 10); len(dead) != 3 {
		t.Fatalf("after revoking f1: %d dead, want 3", len(dead))
	}
	if dead, _ := s.DeadMatrixDevices(ctx, clk.Now().Add(-time.Minute), 1); len(dead) != 1 {
		t.Fatalf("limit 1 gave %d", len(dead))
	}
	for _, f := range []string{"f1", "f2", "f3"} {
		if err := s.DeleteMatrixDevice(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.MatrixDeviceByFamily(ctx, "f1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted device still found: %v", err)
	}
	if err := s.ReserveMatrixDevice(ctx, dev("f5", "u1", "DEV1")); err != nil {
		t.Fatalf("a deleted device's ID reserved anew: %v", err)
	}
}
