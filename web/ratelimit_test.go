package web

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/mxidp/mxidp/clientip"
)

func TestNetworkLimiterAdmitsTheBurstThenTheRatePerNetwork(t *testing.T) {
	now := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	l := newNetworkLimiter(2, 3)
	l.now = func() time.Time { return now }
	admitted := func(addr string, n int) int {
		got := 0
		for range n {
			if ok, _ := l.allow(addr); ok {
				got++
			}
		}
		return got
	}
	if got := admitted("192.0.2.1", 10); got != 3 {
		t.Errorf("burst: %d admitted, want 3", got)
	}
	if ok, wait := l.allow("192.0.2.1"); ok || wait <= 0 || wait > time.Second {
		t.Errorf("past the burst: admitted %v, wait %v; want a refusal with a wait of at most 0.5 s", ok, wait)
	}
	if got := admitted("192.0.2.2", 10); got != 3 {
		t.Errorf("another IPv4 address: %d admitted, want its own burst of 3", got)
	}
	// One IPv6 /64 is one network.
	if got := admitted("2001:db8:1:2::1", 2) + admitted("2001:db8:1:2:ffff::9", 2); got != 3 {
		t.Errorf("two addresses of one /64: %d admitted, want 3 together", got)
	}
	now = now.Add(time.Second)
	if got := admitted("192.0.2.1", 10); got != 2 {
		t.Errorf("a second later: %d admitted, want the rate's 2", got)
	}
	off := newNetworkLimiter(0, 0)
	for range 1000 {
		if ok, _ := off.allow("192.0.2.1"); !ok {
			t.Fatal("a limiter without a burst refused")
		}
	}
}

func TestNetworkLimiterForgetsRefilledNetworksWhenFull(t *testing.T) {
	now := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	l := newNetworkLimiter(1, 1)
	l.now = func() time.Time { return now }
	l.allow("192.0.2.1")
	for i := range maxLimiterEntries {
		l.buckets["n"+strconv.Itoa(i)] = &bucket{tokens: 1, last: now}
	}
	l.allow("192.0.2.2")
	if len(l.buckets) > 3 {
		t.Errorf("%d buckets after the sweep, want the refilled ones gone", len(l.buckets))
	}
	if ok, _ := l.allow("192.0.2.1"); ok {
		t.Error("the sweep forgot a network whose bucket was empty")
	}
}

func TestNetworkLimiterGivesAnIPv6SlashFortyEightSixteenNetworksWorth(t *testing.T) {
	now := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	l := newNetworkLimiter(1, 2)
	l.now = func() time.Time { return now }
	admitted := 0
	for i := range 100 { // 100 different /64s of one /48
		for range 2 {
			if ok, _ := l.allow(fmt.Sprintf("2001:db8:1:%x::1", i)); ok {
				admitted++
			}
		}
	}
	if admitted != 2*clientip.SiteNetworks {
		t.Errorf("100 /64s of one /48: %d admitted, want %d", admitted, 2*clientip.SiteNetworks)
	}
	if ok, _ := l.allow("2001:db8:2::1"); !ok {
		t.Error("another /48 was held up")
	}
}
