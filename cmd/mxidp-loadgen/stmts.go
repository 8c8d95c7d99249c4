package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"time"
)

// statementCounter reads mxidp_db_statements_total, the statements mxidp
// has sent to its database (queries, BEGIN, COMMIT, ROLLBACK), from the
// server's /metrics. A scrape runs one query itself (the back-channel
// logout queue's length), which mxidp counts after reading the count, so
// it lands in the next scrape's: perScrape, found by scraping back to back
// with nothing else going on, is taken off every difference.
type statementCounter struct {
	client    *http.Client
	url       string
	perScrape int64
	last      int64
}

var statementsLine = regexp.MustCompile(`(?m)^mxidp_db_statements_total(?:\{\})? (\S+)$`)

// parseStatements finds the count in a Prometheus text exposition.
func parseStatements(exposition []byte) (int64, error) {
	m := statementsLine.FindSubmatch(exposition)
	if m == nil {
		return 0, fmt.Errorf("/metrics has no mxidp_db_statements_total (this mxidp does not count its statements)")
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return 0, fmt.Errorf("mxidp_db_statements_total %q: %v", m[1], err)
	}
	return int64(v), nil
}

// newStatementCounter reads the count and finds what a scrape adds: the
// least difference of six scrapes back to back (anything else the server
// does meanwhile only adds).
func newStatementCounter(ctx context.Context, c *http.Client, issuer string) (*statementCounter, error) {
	s := &statementCounter{client: c, url: issuer + "/metrics?name%5B%5D=mxidp_db_statements_total"}
	v, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	s.perScrape = -1
	for range 6 {
		w, err := s.read(ctx)
		if err != nil {
			return nil, err
		}
		if d := w - v; s.perScrape < 0 || d < s.perScrape {
			s.perScrape = d
		}
		v = w
	}
	s.last = v
	return s, nil
}

func (s *statementCounter) read(ctx context.Context) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("GET /metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	return parseStatements(body)
}

// take returns the statements since the last take (or the counter's
// start), less those of the scrapes themselves.
func (s *statementCounter) take(ctx context.Context) (int64, error) {
	v, err := s.read(ctx)
	if err != nil {
		return 0, err
	}
	d := v - s.last - s.perScrape
	s.last = v
	return d, nil
}

// countedSteps are the steps whose statements are counted: the flow's
// requests to mxidp (the ID-token check is the client's own work, and
// sends nothing when the key is known).
var countedSteps = []string{"authorize", "login page", "login submit", "callback", "token", "userinfo"}

// stepStatements is one flow's statements per step; reps holds each
// counted flow's total.
type stepStatements struct {
	step map[string]int64
	reps []int64
}

func (s stepStatements) total() int64 {
	var n int64
	for _, step := range countedSteps {
		n += s.step[step]
	}
	return n
}

// countStatements runs one flow unmeasured, then reps flows one step at a
// time, reading the count after each step (and again until it stays put
// for a moment, should a request leave work behind), and keeps each
// step's least count: the server's periodic work (the logout queue's
// poll, the key ring's refresh) can only add. All flows are one user's, so
// that they are the same work (a user's first login may write more).
func countStatements(ctx context.Context, rp *relyingParty, sc *statementCounter, reps int) (stepStatements, error) {
	if f := rp.flow(ctx, newRecorder()); f != nil {
		return stepStatements{}, fmt.Errorf("a flow failed: %s: %s", f.key(), f.detail)
	}
	least := stepStatements{step: map[string]int64{}}
	for rep := range reps {
		rec := newRecorder()
		got := map[string]int64{}
		var hookErr error
		rec.after = func(step string) {
			if hookErr != nil || step == "flow" {
				return
			}
			d, err := sc.take(ctx)
			for i := 0; err == nil && i < 5; i++ {
				time.Sleep(2 * time.Millisecond)
				var more int64
				if more, err = sc.take(ctx); more == 0 {
					break
				}
				d += more
			}
			if err != nil {
				hookErr = err
			}
			got[step] += d
		}
		if _, err := sc.take(ctx); err != nil {
			return stepStatements{}, err
		}
		if f := rp.flow(ctx, rec); f != nil {
			return stepStatements{}, fmt.Errorf("a flow failed: %s: %s", f.key(), f.detail)
		}
		if hookErr != nil {
			return stepStatements{}, hookErr
		}
		var sum int64
		for _, step := range countedSteps {
			if v, ok := least.step[step]; rep == 0 || !ok || got[step] < v {
				least.step[step] = got[step]
			}
			sum += got[step]
		}
		least.reps = append(least.reps, sum)
	}
	return least, nil
}
