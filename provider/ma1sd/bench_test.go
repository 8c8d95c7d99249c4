package ma1sd_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/provider/ma1sd"
	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// BenchmarkCheckCredentials measures one Synapse password check at the
// default hash cost, the latency Synapse's event loop waits for: the
// legacy provider's rest_auth_provider.py calls requests.post synchronously
// in it, so the p99 should stay well under 300 ms.
func BenchmarkCheckCredentials(b *testing.B) {
	store := storagetest.Open(b, "sqlite", storage.Options{})
	h, err := password.Hash("Wonder-Land-42", password.Default)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := store.CreateUser(context.Background(), storage.User{ID: "u1", Username: "alice", PasswordHash: h}); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := ma1sd.New(store, &provider.Login{Store: store, Hash: password.Default, Logger: log}, "example.org", ma1sd.Options{Logger: log})
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest("POST", ma1sd.CheckCredentialsPath, strings.NewReader(aliceCC))
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != 200 || !strings.Contains(w.Body.String(), `"success":true`) {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	})
}

// BenchmarkCheckCredentialsVsHash compares check_credentials throughput
// with the ceiling the password hash sets. "hash" runs password.Verify of a
// default-cost hash on all cores (b.RunParallel), for reference. Then, per
// backend, "handler" calls the service in-process and "network" goes
// through a real HTTP server and a keep-alive client, with four callers
// per core so that the hash slots never idle waiting for a caller. Each
// alternates batches of 32 checks with batches of 32 raw verifies on all
// cores and reports checks/s, verifies/s and throughput/hash = checks/s ÷
// verifies/s (target ≥ 0.9: the database, JSON and HTTP cost next to
// nothing beside the hash). Alternating keeps the ratio honest on a machine
// whose load changes meanwhile; ns/op counts both halves. PostgreSQL runs
// when MXIDP_TEST_POSTGRES is set.
func BenchmarkCheckCredentialsVsHash(b *testing.B) {
	const pw = "Wonder-Land-42"
	h, err := password.Hash(pw, password.Default)
	if err != nil {
		b.Fatal(err)
	}
	verify := func(int) error {
		if ok, err := password.Verify(h, pw); !ok {
			return fmt.Errorf("no match: %v", err)
		}
		return nil
	}
	b.Run("hash", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := verify(0); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
	})

	procs := runtime.GOMAXPROCS(0)
	callers := 4 * procs
	// alternate runs b.N checks (check(caller)) against as many verifies.
	alternate := func(b *testing.B, check func(caller int) error) {
		const batch = 32
		var tChecks, tVerifies time.Duration
		for done := 0; done < b.N; done += batch {
			n := min(batch, b.N-done)
			t0 := time.Now()
			if err := runN(n, callers, check); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if err := runN(n, procs, verify); err != nil {
				b.Fatal(err)
			}
			tChecks += t1.Sub(t0)
			tVerifies += time.Since(t1)
		}
		checks, verifies := float64(b.N)/tChecks.Seconds(), float64(b.N)/tVerifies.Seconds()
		b.ReportMetric(checks, "checks/s")
		b.ReportMetric(verifies, "verifies/s")
		b.ReportMetric(checks/verifies, "throughput/hash")
	}

	for _, backend := range storagetest.Backends {
		b.Run(backend, func(b *testing.B) {
			store := storagetest.Open(b, backend, storage.Options{})
			// One account per caller: each password check holds its login
			// name's throttle counter, as Synapse's many users do.
			bodies := make([]string, callers)
			for i := range callers {
				name := fmt.Sprintf("user%03d", i)
				if _, err := store.CreateUser(context.Background(), storage.User{ID: "id-" + name, Username: name, PasswordHash: h}); err != nil {
					b.Fatal(err)
				}
				bodies[i] = fmt.Sprintf(`{"user":{"id":"@%s:example.org","password":%q}}`, name, pw)
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			s := ma1sd.New(store, &provider.Login{Store: store, Hash: password.Default, Logger: log}, "example.org", ma1sd.Options{Logger: log})

			b.Run("handler", func(b *testing.B) {
				alternate(b, func(caller int) error {
					r := httptest.NewRequest("POST", ma1sd.CheckCredentialsPath, strings.NewReader(bodies[caller]))
					w := httptest.NewRecorder()
					s.ServeHTTP(w, r)
					if w.Code != 200 || !strings.Contains(w.Body.String(), `"success":true`) {
						return fmt.Errorf("%d %s", w.Code, w.Body)
					}
					return nil
				})
			})

			b.Run("network", func(b *testing.B) {
				srv := httptest.NewServer(s)
				defer srv.Close()
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * callers}}
				defer client.CloseIdleConnections()
				alternate(b, func(caller int) error {
					resp, err := client.Post(srv.URL+ma1sd.CheckCredentialsPath, "application/json", strings.NewReader(bodies[caller]))
					if err != nil {
						return err
					}
					got, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 || !strings.Contains(string(got), `"success":true`) {
						return fmt.Errorf("%d %s %v", resp.StatusCode, got, err)
					}
					return nil
				})
			})
		})
	}
}

// runN runs do n times on the given number of goroutines (do gets the
// goroutine's number) and returns the first error.
func runN(n, goroutines int, do func(int) error) error {
	var next atomic.Int64
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for g := range min(goroutines, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := do(g); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
