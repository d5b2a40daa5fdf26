# tcauth — build, test, bench, fuzz.
#
# `make test` is what CI runs (.ci/run). It installs what the tests need
# (npm packages from the committed lockfile, Debian packages when a test
# needs one) and then runs lint, unit tests with -race, short fuzz runs,
# and the integration tests.

SHELL     := /bin/bash
GO        ?= go
PKGS      := ./...
FUZZTIME  ?= 5s
BENCHTIME ?= 1s
NODE_DIR  := integration/node
BIN       := bin/tcauth

.PHONY: all build test test-unit test-integration test-reliability lint fuzz bench deps deps-node deps-net deps-nginx deps-oidc deps-browser deps-azurite deps-minio deps-rabbitmq deps-prev-release deps-bench bench-compare bench-smoke clean

all: build

# The version and commit `tcauth version` and /__version__ report
# (protocol/buildinfo); without them the Go toolchain's vcs stamp is used.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X github.com/tcauth/tcauth/protocol/buildinfo.version=$(VERSION) -X github.com/tcauth/tcauth/protocol/buildinfo.commit=$(COMMIT)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/tcauth

## test: everything CI runs.
test: deps lint test-unit fuzz test-integration bench-smoke test-reliability
	@echo "make test: all checks passed"

## deps: install what the tests need on a fresh machine.
deps: deps-node deps-net deps-nginx deps-oidc deps-browser deps-azurite deps-minio deps-rabbitmq deps-bench

# The example OpenID provider of github.com/zitadel/oidc/v3 (example/server:
# discovery, a login form, users from USERS_FILE), the real OIDC provider of
# integration/login. Built once into bin/peers/ from the Go module proxy (or
# the module cache, offline); the tests find it through TCAUTH_OIDC_EXAMPLE.
OIDC_EXAMPLE         = $(CURDIR)/bin/peers/zitadel-oidc-example
OIDC_EXAMPLE_VERSION = v3.52.0
deps-oidc:
	@if [ ! -x $(OIDC_EXAMPLE) ]; then \
		echo "building the zitadel/oidc $(OIDC_EXAMPLE_VERSION) example OpenID provider into bin/peers/"; \
		tmp=$$(mktemp -d) && GOBIN=$$tmp GOFLAGS=-mod=mod $(GO) install github.com/zitadel/oidc/v3/example/server@$(OIDC_EXAMPLE_VERSION) && \
		mkdir -p $(dir $(OIDC_EXAMPLE)) && mv $$tmp/server $(OIDC_EXAMPLE) && rmdir $$tmp; fi

# Debian's nginx and its headers-more module (examples/nginx clears every
# caller-supplied X-Taskcluster-* header with it) for the forward-auth
# example's test. Checked by file, not by `command -v nginx`: an nginx
# without the module is not enough. The package's own service is not wanted
# (the test runs nginx under its own prefix).
NGINX_HEADERS_MORE = /usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so
deps-nginx:
	@if [ ! -x /usr/sbin/nginx ] || [ ! -f $(NGINX_HEADERS_MORE) ]; then \
		echo "installing nginx-light and libnginx-mod-http-headers-more-filter from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-http-headers-more-filter >/dev/null && \
		{ service nginx stop >/dev/null 2>&1 || true; }; \
		[ -f $(NGINX_HEADERS_MORE) ] || { echo "deps-nginx: $(NGINX_HEADERS_MORE) missing after install"; exit 1; }; fi

# Debian's headless Chromium for the web UI's browser tests
# (integration/webui, driven with chromedp), which find it through
# TCAUTH_BROWSER. Checked by file: chromedp's own lookup does not know the
# headless-shell name.
HEADLESS_CHROMIUM = /usr/bin/chromium-headless-shell
deps-browser:
	@if [ ! -x $(HEADLESS_CHROMIUM) ]; then \
		echo "installing chromium-headless-shell from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium-headless-shell >/dev/null; \
		[ -x $(HEADLESS_CHROMIUM) ] || { echo "deps-browser: $(HEADLESS_CHROMIUM) missing after install"; exit 1; }; fi

# Azurite, the Azure Storage emulator, for controlplane/cloud's SAS tests:
# 3.35.0 is the last release that runs on Node 20. Installed under bin/
# (ignored by git) only if missing.
# Debian's RabbitMQ for the change-event tests (controlplane/events,
# integration/events), which run their own broker on a private port, node
# name and data directory (package rabbitmqtest) and find it through
# TCAUTH_RABBITMQ: the real start script, not /usr/sbin's wrapper (which
# switches to the rabbitmq user). The package's own service is not wanted.
RABBITMQ = /usr/lib/rabbitmq/bin/rabbitmq-server
deps-rabbitmq:
	@if [ ! -x $(RABBITMQ) ]; then \
		echo "installing rabbitmq-server from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null; \
		{ service rabbitmq-server stop >/dev/null 2>&1 || true; }; \
		{ command -v systemctl >/dev/null 2>&1 && systemctl disable rabbitmq-server >/dev/null 2>&1 || true; }; \
		[ -x $(RABBITMQ) ] || { echo "deps-rabbitmq: $(RABBITMQ) missing after install"; exit 1; }; fi

AZURITE_DIR = $(CURDIR)/bin/peers/azurite
AZURITE     = $(AZURITE_DIR)/node_modules/.bin/azurite
deps-azurite: deps-node
	@test -x $(AZURITE) || { echo "npm install azurite@3.35.0 into $(AZURITE_DIR)"; \
		npm install --no-audit --no-fund --loglevel=error --prefix $(AZURITE_DIR) azurite@3.35.0; }

# MinIO (S3 and an STS with AssumeRole) for controlplane/cloud's
# awsS3Credentials test, which finds it through TCAUTH_MINIO. MinIO is
# AGPL-3.0: it is built here as a separate program and only ever run as a
# process, never linked into tcauth (its module is not in go.mod). Built
# once into bin/peers/ (~3 min, a 150 MB binary).
MINIO         = $(CURDIR)/bin/peers/minio
MINIO_VERSION = v0.0.0-20260212201848-7aac2a2c5b7c
deps-minio:
	@if [ ! -x $(MINIO) ]; then \
		echo "building MinIO $(MINIO_VERSION) into bin/peers/"; \
		tmp=$$(mktemp -d) && GOBIN=$$tmp GOFLAGS=-mod=mod $(GO) install github.com/minio/minio@$(MINIO_VERSION) && \
		mkdir -p $(dir $(MINIO)) && mv $$tmp/minio $(MINIO) && rmdir $$tmp; fi

# The previous release, for integration/upgrade's rolling upgrade: commit
# PREV_RELEASE of this repository's own history (the last one before the
# formats were versioned and the outbox came), built into bin/peers/ from
# `git archive` (the working tree and git's state are not touched) and
# rebuilt when PREV_RELEASE changes. CI's checkout is a full clone; a
# shallow one is deepened with `git fetch --unshallow`. Without the
# history the target fails; `go test ./integration/upgrade` without
# TCAUTH_PREV_BIN skips instead.
PREV_RELEASE     = 2c4bd88
PREV_RELEASE_BIN = $(CURDIR)/bin/peers/tcauth-prev
deps-prev-release:
	@if [ ! -x $(PREV_RELEASE_BIN) ] || [ "$$(cat $(PREV_RELEASE_BIN).rev 2>/dev/null)" != "$(PREV_RELEASE)" ]; then \
		if ! git cat-file -e '$(PREV_RELEASE)^{commit}' 2>/dev/null && [ "$$(git rev-parse --is-shallow-repository 2>/dev/null)" = true ]; then \
			echo "deps-prev-release: shallow clone; git fetch --unshallow"; timeout 60 git fetch --quiet --unshallow || true; fi; \
		if ! git cat-file -e '$(PREV_RELEASE)^{commit}' 2>/dev/null; then \
			msg="commit $(PREV_RELEASE) is not in this clone's history (a shallow clone whose origin cannot be reached): the rolling-upgrade test needs a full clone"; \
			echo "deps-prev-release: WARNING: $$msg"; mkdir -p $(dir $(PREV_RELEASE_BIN)); echo "$$msg" > $(PREV_RELEASE_BIN).missing; exit 0; fi; \
		rm -f $(PREV_RELEASE_BIN).missing; \
		echo "building the previous release ($(PREV_RELEASE)) into bin/peers/tcauth-prev"; \
		tmp=$$(mktemp -d) && git archive --format=tar $(PREV_RELEASE) | tar -x -C $$tmp && \
		mkdir -p $(dir $(PREV_RELEASE_BIN)) && (cd $$tmp && $(GO) build -o $(PREV_RELEASE_BIN) ./cmd/tcauth) && \
		echo $(PREV_RELEASE) > $(PREV_RELEASE_BIN).rev; status=$$?; rm -rf $$tmp; exit $$status; fi

deps-net:
	@command -v ip >/dev/null 2>&1 || { echo "installing iproute2 from Debian"; \
		apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null; }

deps-node:
	@command -v node >/dev/null 2>&1 || { echo "installing nodejs and npm from Debian"; \
		apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
	@if [ ! -d $(NODE_DIR)/node_modules ] || [ $(NODE_DIR)/package-lock.json -nt $(NODE_DIR)/node_modules ]; then \
		echo "npm ci in $(NODE_DIR)"; npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error && touch $(NODE_DIR)/node_modules; fi

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './$(NODE_DIR)/*')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

test-unit: deps
	TCAUTH_REQUIRE_PEERS=1 TCAUTH_AZURITE=$(AZURITE) TCAUTH_MINIO=$(MINIO) TCAUTH_RABBITMQ=$(RABBITMQ) $(GO) test -race -count=1 $$($(GO) list ./... | grep -v /integration/)

test-integration: build deps deps-prev-release
	@rm -rf bin/summaries
	TCAUTH_SUMMARY_DIR=$(CURDIR)/bin/summaries TCAUTH_BIN=$(CURDIR)/$(BIN) TCAUTH_PREV_BIN=$(PREV_RELEASE_BIN) TCAUTH_PREV_MISSING="$$(cat $(PREV_RELEASE_BIN).missing 2>/dev/null)" TCAUTH_OIDC_EXAMPLE=$(OIDC_EXAMPLE) TCAUTH_BROWSER=$(HEADLESS_CHROMIUM) TCAUTH_RABBITMQ=$(RABBITMQ) TCAUTH_REQUIRE_PEERS=1 $(GO) test -count=1 -timeout 15m $$($(GO) list ./integration/... | grep -v /reliability); status=$$?; \
		echo; echo "integration figures"; cat bin/summaries/summary.txt 2>/dev/null || echo "(none recorded)"; exit $$status

## test-reliability: fault injection in network namespaces (root), the
## linearizability check and the security table; ends with a summary table.
## Without root or `ip netns` the fault scenarios skip with the reason —
## except under `make test`, which requires them (TCAUTH_REQUIRE_PEERS=1).
test-reliability: build deps-net
	@rm -f bin/reliability-summary.txt
	TCAUTH_BIN=$(CURDIR)/$(BIN) TCAUTH_REQUIRE_PEERS=1 TCAUTH_RELIABILITY_SUMMARY=$(CURDIR)/bin/reliability-summary.txt \
		$(GO) test -count=1 -timeout 15m ./integration/reliability/; status=$$?; \
		echo; echo "reliability summary"; cat bin/reliability-summary.txt 2>/dev/null || echo "(no summary: the suite did not run)"; exit $$status

## fuzz: every fuzz target, FUZZTIME each, except a rotating subset of
## FUZZ_LONG_COUNT targets that runs FUZZ_LONG instead. FUZZ_ROTATE (default:
## the commit hash) picks the subset, so successive commits give every
## target its long run while `make test` stays short; the line "fuzz: ...
## long run for" names them. Inputs a run finds are written to
## testdata/fuzz/<FuzzName>/ in the package: commit them, and plain
## `go test` replays them (with the f.Add seeds) as regression tests.
## Go 1.26's fuzz coordinator can end a run with a bare "context deadline
## exceeded" on a loaded machine (golang/go#75804, fixed in 1.27): such a
## run, with no failing input written, is retried (up to three runs in
## all); anything else fails.
FUZZ_LONG       ?= 45s
FUZZ_LONG_COUNT ?= 3
FUZZ_ROTATE     ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || date +%Y%j)

fuzz:
	@set -e; start=$$(date +%s); targets=$$(for dir in $$($(GO) list -f '{{.Dir}}' ./... ); do 			for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do 				echo "$$dir:$$t"; done; done); 	n=$$(echo "$$targets" | wc -l); first=$$(( $$(printf '%s' '$(FUZZ_ROTATE)' | cksum | cut -d' ' -f1) % n )); 	long=$$(echo "$$targets" | awk -v f=$$first -v c=$(FUZZ_LONG_COUNT) -v n=$$n '(NR-1-f+n)%n < c'); 	echo "fuzz: $$n targets, $(FUZZTIME) each; long run ($(FUZZ_LONG)) for:" $$(echo "$$long" | sed 's/.*://') "(FUZZ_ROTATE=$(FUZZ_ROTATE))"; 	for spec in $$targets; do 		dir=$${spec%:*}; t=$${spec##*:}; fuzztime=$(FUZZTIME); 		if echo "$$long" | grep -qxF "$$spec"; then fuzztime=$(FUZZ_LONG); fi; 		for attempt in 1 2 3; do 			echo "fuzz $$t in $${dir#$(CURDIR)/} for $$fuzztime"; 			if $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$$fuzztime $$dir >/tmp/tcauth-fuzz.log 2>&1; then break; fi; 			if [ $$attempt -lt 3 ] && grep -q 'context deadline exceeded' /tmp/tcauth-fuzz.log && ! grep -q 'Failing input written' /tmp/tcauth-fuzz.log; then 				echo "  coordinator deadline race (golang/go#75804), no failing input: retrying"; continue; fi; 			cat /tmp/tcauth-fuzz.log; exit 1; 		done; 	done; 	echo "fuzz: $$n targets in $$(( $$(date +%s) - start )) s"

## bench-compare: tcauth measured side by side with what its users would run
## instead (integration/benchcompare): the table in bin/bench/bench-compare.md,
## latency curves in bin/bench/bench-compare.png. BENCH_DURATION (per
## contender per round, default 5s) and BENCH_ROUNDS (default 3) size it;
## BENCH_SMOKE=1 is the quick run. Run it on an otherwise idle machine.
bench-compare: build deps-bench
	BENCH_COMPARE=1 BENCH_SMOKE=$(BENCH_SMOKE) BENCH_DURATION=$(BENCH_DURATION) BENCH_ROUNDS=$(BENCH_ROUNDS) \
		BENCH_COMMAND="make bench-compare$(if $(BENCH_SMOKE), BENCH_SMOKE=$(BENCH_SMOKE))$(if $(BENCH_DURATION), BENCH_DURATION=$(BENCH_DURATION))$(if $(BENCH_ROUNDS), BENCH_ROUNDS=$(BENCH_ROUNDS))" \
		TCAUTH_BIN=$(CURDIR)/$(BIN) TCAUTH_REQUIRE_PEERS=1 \
		$(GO) test -count=1 -timeout 60m -run '^TestBenchCompare$$' -v ./integration/benchcompare/

## bench-smoke: make test's run of bench-compare (BENCH_SMOKE=1: a second per
## contender, one round, small data), to prove the harness still works; its
## figures mean nothing and go to bin/bench-smoke/, not over a real run's.
bench-smoke: build deps-bench
	BENCH_SMOKE=1 BENCH_OUT=$(CURDIR)/bin/bench-smoke BENCH_COMMAND="make bench-smoke" \
		TCAUTH_BIN=$(CURDIR)/$(BIN) TCAUTH_REQUIRE_PEERS=1 \
		$(GO) test -count=1 -timeout 10m -run '^TestBenchCompare$$' ./integration/benchcompare/

# Debian's Caddy (2.6.2 on bookworm) and etcd for make bench-compare's
# contenders, nginx through deps-nginx. Checked by file. The packages' own
# services are not wanted (the benchmark runs its own on private ports).
CADDY = /usr/bin/caddy
ETCD  = /usr/bin/etcd
deps-bench: deps-nginx
	@if [ ! -x $(CADDY) ] || [ ! -x $(ETCD) ]; then \
		echo "installing caddy and etcd-server from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends caddy etcd-server >/dev/null; \
		for s in caddy etcd; do { service $$s stop >/dev/null 2>&1 || true; }; \
			{ command -v systemctl >/dev/null 2>&1 && systemctl disable $$s >/dev/null 2>&1 || true; }; done; \
		[ -x $(CADDY) ] && [ -x $(ETCD) ] || { echo "deps-bench: $(CADDY) or $(ETCD) missing after install"; exit 1; }; fi

## bench: every Go benchmark, one run, figures side by side; then the
## memory section of bench-compare (bytes per client and per role from the
## RSS of real processes, which heap estimates miss) into bin/bench-memory/.
bench: build
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) $$($(GO) list ./... | grep -v /integration/)
	BENCH_COMPARE=1 BENCH_OUT=$(CURDIR)/bin/bench-memory BENCH_COMMAND="make bench" \
		TCAUTH_BIN=$(CURDIR)/$(BIN) TCAUTH_REQUIRE_PEERS=1 \
		$(GO) test -count=1 -timeout 30m -run '^TestBenchCompare$$/^memory$$' -v ./integration/benchcompare/

clean:
	rm -rf bin
