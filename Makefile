# mxidp — see README.md. Every target works on a fresh Debian machine with Go.

GO          ?= go
BIN         := bin/mxidp
# The binary is pure Go (no libc to map), stripped of its symbol table
# and debug information, with module-relative file names in stack traces.
BUILD       := CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w'
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build run test bench lint screenshots deb clean

all: build

## build: compile the binary to bin/mxidp
build:
	$(BUILD) -o $(BIN) ./cmd/mxidp

## run: build and serve on the embedded SQLite default (./data), creating a demo user on first run
run: build
	./$(BIN) serve --demo

## test: a short run of every fuzz target, then the whole suite with the
## race detector, on SQLite and on PostgreSQL (and the platform tests on MariaDB)
## (MXIDP_TEST_POSTGRES, or a throwaway cluster started here)
test:
	.ci/deps
	.ci/fuzz 2
	MXIDP_TEST_POSTGRES_REQUIRED=1 .ci/with-postgres .ci/with-mariadb .ci/gotest

## bench: every figure of the README's Performance table in one run, on SQLite and
## PostgreSQL, against a started mxidp (cmd/mxidp-loadgen; about 3 minutes):
## server CPU per login flow beyond the hash with an ES256 and an RS256
## client beside one RS256 signature, flows/s and check_credentials/s at the
## default cost against the parallel hash, discovery and JWKS against a
## plain handler with the request log on, idle RSS, SQL statements per
## flow; then the Go micro-benchmarks (JWKS beside a plain handler,
## password hash cost) and the REST directory search p50/p99 over 100,000
## users (about 1.5 minutes). bin/mxidp-loadgen -count-statements counts a
## flow's statements step by step in seconds.
bench:
	$(BUILD) -o $(BIN) ./cmd/mxidp
	$(GO) build -o bin/mxidp-loadgen ./cmd/mxidp-loadgen
	MXIDP_TEST_POSTGRES_REQUIRED=1 .ci/with-postgres sh -c 'bin/mxidp-loadgen -mxidp $(BIN); status=$$?; \
		$(GO) test -run "^$$" -bench . -benchmem ./web/ ./provider/password/ || status=1; \
		$(GO) test -run "^$$" -bench "DirectorySearch" -benchtime 3s ./provider/ma1sd/ || status=1; exit $$status'

## deb: build the Debian package into bin/ (contrib/debian/build): the static
## binary, /usr/bin/mxidp for the command line, a hardened systemd unit, and
## the commented example as the conffile /etc/mxidp/mxidp.yaml
deb:
	contrib/debian/build bin

## screenshots: photograph the login, login-error, consent, error and account pages in
## headless Chromium, English and German, desktop and phone, into docs/screenshots
## (SQLite only; fails naming the package when Chromium is missing)
screenshots:
	MXIDP_TEST_POSTGRES_REQUIRED=1 MXIDP_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots \
		$(GO) test -count=1 -run '^Test(Account)?PageScreenshots$$' ./cmd/mxidp/

## lint: gofmt, go vet and staticcheck
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf bin

## fuzz: run every fuzz target for FUZZTIME seconds each (default 60)
FUZZTIME ?= 60
.PHONY: fuzz
fuzz:
	.ci/fuzz $(FUZZTIME)
