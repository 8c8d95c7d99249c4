package web

import (
	"math"
	"strings"
	"sync"
	"time"

	"github.com/mxidp/mxidp/clientip"
)

// networkLimiter bounds how often one client network may do something that
// writes without authentication: here, opening authorization requests,
// each of which is a row in the database until it expires. It is a token
// bucket per network (an IPv4 address, an IPv6 /64), kept in memory: each
// instance bounds what it writes itself.
type networkLimiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxLimiterEntries bounds the limiter's own memory; past it, networks
// whose buckets have refilled are forgotten (they would be admitted
// anyway), and if that is not enough, all are.
const maxLimiterEntries = 100_000

func newNetworkLimiter(perSecond, burst float64) *networkLimiter {
	return &networkLimiter{rate: perSecond, burst: burst, now: time.Now, buckets: map[string]*bucket{}}
}

// allow takes a token for the network of addr, or says how long until one
// is there. An address that cannot be read shares one bucket. A limiter
// with no burst or no rate admits everything.
func (l *networkLimiter) allow(addr string) (bool, time.Duration) {
	if l.burst <= 0 || l.rate <= 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	// An IPv6 /64 is cheap to have many of: the site (/48) around it also
	// has a budget, of clientip.SiteNetworks networks.
	network, site := clientip.Networks(addr)
	if network == "" {
		network = "unknown"
	}
	keys := []string{network}
	if site != "" {
		keys = append(keys, siteKeyPrefix+site)
	}
	var wait time.Duration
	buckets := make([]*bucket, len(keys))
	for i, key := range keys {
		scale := 1.0
		if i > 0 {
			scale = clientip.SiteNetworks
		}
		b := l.bucket(key, now, scale)
		buckets[i] = b
		if b.tokens < 1 {
			wait = max(wait, time.Duration((1-b.tokens)/(l.rate*scale)*float64(time.Second)))
		}
	}
	if wait > 0 {
		return false, wait
	}
	for _, b := range buckets {
		b.tokens--
	}
	return true, 0
}

// siteKeyPrefix marks a site's bucket, which is SiteNetworks times larger.
const siteKeyPrefix = "site:"

// bucket returns key's bucket refilled to now, at scale times the rate
// and burst.
func (l *networkLimiter) bucket(key string, now time.Time, scale float64) *bucket {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxLimiterEntries {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst * scale, last: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(l.burst*scale, b.tokens+now.Sub(b.last).Seconds()*l.rate*scale)
	b.last = now
	return b
}

func (l *networkLimiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		scale := 1.0
		if strings.HasPrefix(k, siteKeyPrefix) {
			scale = clientip.SiteNetworks
		}
		if b.tokens+now.Sub(b.last).Seconds()*l.rate*scale >= l.burst*scale {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxLimiterEntries {
		clear(l.buckets)
	}
}
