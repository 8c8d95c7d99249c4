package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"runtime"
	"sync"
	"time"
)

// signer measures what one RS256 signature costs on this machine in this
// run: RSA-2048, PKCS #1 v1.5, SHA-256 over a payload the size of an ID
// token, with a key generated for the run; the yardstick of the RS256
// client's target ("one signature + 1.0 ms").
type signer struct {
	key     *rsa.PrivateKey
	payload []byte
}

func newSigner() (*signer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	payload := make([]byte, 700)
	rand.Read(payload)
	return &signer{key: key, payload: payload}, nil
}

// sign makes one signature and returns the CPU its thread spent on it.
// The caller holds its OS thread.
func (s *signer) sign() (time.Duration, error) {
	t := threadCPU()
	digest := sha256.Sum256(s.payload)
	if _, err := rsa.SignPKCS1v15(nil, s.key, crypto.SHA256, digest[:]); err != nil {
		return 0, err
	}
	return threadCPU() - t, nil
}

// signatures is a series of signatures: how many, and the CPU and wall
// time they took.
type signatures struct {
	n         int
	cpu, wall time.Duration
}

func (s signatures) perSignature() time.Duration {
	if s.n == 0 {
		return 0
	}
	return s.cpu / time.Duration(s.n)
}

// idle signs one signature after another on one thread for d (while the
// server idles): the CPU of one signature on an otherwise quiet core.
func (s *signer) idle(ctx context.Context, d time.Duration) (signatures, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s.sign() // the first pays for lazily computed values
	var r signatures
	start := time.Now()
	for ctx.Err() == nil && (r.n == 0 || time.Since(start) < d) {
		c, err := s.sign()
		if err != nil {
			return r, err
		}
		r.n++
		r.cpu += c
	}
	r.wall = time.Since(start)
	return r, ctx.Err()
}

// sampler signs once every interval on a thread of its own while a load
// runs beside it: the CPU one signature takes when the machine's cores
// (or their SMT siblings) are busy, as the server's are under load. One
// signature every 25 ms takes about 5 % of a core.
type sampler struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	got  signatures
}

func (s *signer) underLoad(interval time.Duration) *sampler {
	sm := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(sm.done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-sm.stop:
				return
			case <-t.C:
			}
			c, err := s.sign()
			if err != nil {
				continue
			}
			sm.mu.Lock()
			sm.got.n++
			sm.got.cpu += c
			sm.mu.Unlock()
		}
	}()
	return sm
}

// finish stops the sampler and returns what it measured.
func (sm *sampler) finish() signatures {
	close(sm.stop)
	<-sm.done
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.got
}
