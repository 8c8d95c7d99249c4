package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// document is one response mxidp serves the same to everyone, recorded so
// that the plain server can serve the same bytes with the same headers.
type document struct {
	Name         string // discovery or JWKS
	Path         string
	ContentType  string
	CacheControl string
	Body         []byte
}

// fetchDocument records a document as mxidp serves it.
func fetchDocument(ctx context.Context, c *http.Client, name, issuer, path string) (document, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, issuer+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		return document{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return document{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return document{}, fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	return document{Name: name, Path: path, ContentType: resp.Header.Get("Content-Type"),
		CacheControl: resp.Header.Get("Cache-Control"), Body: body}, nil
}

// servePlain is the second process: a bare net/http server that writes the
// manifest's documents, and nothing else. It prints its address, and stops
// when its standard input closes (the parent is gone) or on SIGTERM.
func servePlain(manifest string) {
	data, err := os.ReadFile(manifest)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serve-plain:", err)
		os.Exit(2)
	}
	var docs []document
	if err := json.Unmarshal(data, &docs); err != nil {
		fmt.Fprintln(os.Stderr, "serve-plain:", err)
		os.Exit(2)
	}
	mux := http.NewServeMux()
	for _, d := range docs {
		mux.HandleFunc("GET "+d.Path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", d.ContentType)
			w.Header().Set("Cache-Control", d.CacheControl)
			w.Write(d.Body)
		})
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "serve-plain:", err)
		os.Exit(2)
	}
	fmt.Printf("listening on %s\n", l.Addr())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	http.Serve(l, mux)
}

// plainServer is the running second process.
type plainServer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	url   string
}

func startPlain(dir string, docs []document) (*plainServer, error) {
	manifest := filepath.Join(dir, "plain-documents.json")
	data, _ := json.Marshal(docs)
	if err := os.WriteFile(manifest, data, 0o600); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve-plain", manifest)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if err != nil || !ok {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the plain server did not start: %q %v", line, err)
	}
	return &plainServer{cmd: cmd, stdin: stdin, url: "http://" + addr}, nil
}

func (p *plainServer) pid() int { return p.cmd.Process.Pid }

func (p *plainServer) stop() {
	p.stdin.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// getUnit is one GET of a document that must come back 200 with exactly
// the recorded bytes.
func getUnit(c *http.Client, u string, want []byte, step string) func(context.Context, *recorder) *failure {
	return func(ctx context.Context, rec *recorder) *failure {
		t := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, body, f := exchange(c, step, req, http.StatusOK)
		if f != nil {
			return f
		}
		if !bytes.Equal(body, want) {
			return fail(step, resp.StatusCode, "body differs from the first answer", describe(req, resp, body))
		}
		rec.observe(step, time.Since(t))
		return nil
	}
}

// getComparison is the same document from mxidp and from the plain server.
type getComparison struct {
	doc          document
	mxidp, plain outcome
	served       int // requests mxidp answered, warm-up included
}

func (g getComparison) ratio() float64 {
	if g.plain.rate() == 0 {
		return 0
	}
	return g.mxidp.rate() / g.plain.rate()
}

// cpuRatio compares the servers' CPU per request the same way round
// (plain ÷ mxidp, so that below 1 means mxidp costs more): a second view,
// less sensitive to how the load generator itself was scheduled.
func (g getComparison) cpuRatio() float64 {
	return perRequest(g.plain) / perRequest(g.mxidp)
}

func perRequest(o outcome) float64 {
	return float64(o.cpu.server.Microseconds()) / float64(max(o.counted, 1))
}

// compareGET measures one document from both servers in eight slices of
// a quarter of o.getTime each, in the order mxidp, plain, plain, mxidp,
// mxidp, plain, plain, mxidp, and adds up each server's slices: a change
// in the machine's load during the measurement hits both alike.
func compareGET(ctx context.Context, o options, doc document, mxidpURL string, serverPID int, plain *plainServer, seen *reporter) (getComparison, error) {
	c := &http.Client{Transport: newTransport(o.workers), Timeout: 30 * time.Second, CheckRedirect: noRedirects}
	type side struct {
		url string
		pid int
		out *outcome
	}
	g := getComparison{doc: doc}
	m := side{mxidpURL + doc.Path, serverPID, &g.mxidp}
	p := side{plain.url + doc.Path, plain.pid(), &g.plain}
	// Open the connections before measuring.
	for _, s := range []side{m, p} {
		warm, err := drive(ctx, o.workers, 200*time.Millisecond, 0, nil, getUnit(c, s.url, doc.Body, doc.Name), seen, "warm-up")
		if s == m {
			g.served += warm.answered()
		}
		if err != nil {
			return g, err
		}
	}
	for _, s := range []side{m, p, p, m, m, p, p, m} {
		meter := &cpuMeter{serverPID: s.pid}
		part, err := drive(ctx, o.workers, o.getTime/4, 0, meter, getUnit(c, s.url, doc.Body, doc.Name), seen, doc.Name)
		s.out.merge(part)
		if s == m {
			g.served += part.answered()
		}
		if err != nil {
			return g, err
		}
	}
	return g, nil
}
