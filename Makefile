# tcauth — build, test, bench, fuzz.
#
# `make test` is what CI runs (.ci/run). It installs what the tests need
# (npm packages from the committed lockfile, Debian packages when a test
# needs one) and then runs lint, unit tests with -race, short fuzz runs,
# and the integration tests.

SHELL     := /bin/bash
GO        ?= go
PKGS      := ./...
FUZZTIME  ?= 8s
BENCHTIME ?= 1s
NODE_DIR  := integration/node
BIN       := bin/tcauth

.PHONY: all build test test-unit test-integration test-reliability lint fuzz bench deps deps-node deps-net deps-nginx deps-oidc deps-browser deps-azurite clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tcauth

## test: everything CI runs.
test: deps lint test-unit fuzz test-integration test-reliability
	@echo "make test: all checks passed"

## deps: install what the tests need on a fresh machine.
deps: deps-node deps-net deps-nginx deps-oidc deps-browser deps-azurite

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
AZURITE_DIR = $(CURDIR)/bin/peers/azurite
AZURITE     = $(AZURITE_DIR)/node_modules/.bin/azurite
deps-azurite: deps-node
	@test -x $(AZURITE) || { echo "npm install azurite@3.35.0 into $(AZURITE_DIR)"; \
		npm install --no-audit --no-fund --loglevel=error --prefix $(AZURITE_DIR) azurite@3.35.0; }

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
	TCAUTH_REQUIRE_PEERS=1 TCAUTH_AZURITE=$(AZURITE) $(GO) test -race -count=1 $$($(GO) list ./... | grep -v /integration/)

test-integration: build deps
	TCAUTH_BIN=$(CURDIR)/$(BIN) TCAUTH_OIDC_EXAMPLE=$(OIDC_EXAMPLE) TCAUTH_BROWSER=$(HEADLESS_CHROMIUM) TCAUTH_REQUIRE_PEERS=1 $(GO) test -count=1 -timeout 15m $$($(GO) list ./integration/... | grep -v /reliability)

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
## run, with no failing input written, is retried once; anything else fails.
FUZZ_LONG       ?= 60s
FUZZ_LONG_COUNT ?= 3
FUZZ_ROTATE     ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || date +%Y%j)

fuzz:
	@set -e; targets=$$(for dir in $$($(GO) list -f '{{.Dir}}' ./... ); do 			for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do 				echo "$$dir:$$t"; done; done); 	n=$$(echo "$$targets" | wc -l); first=$$(( $$(printf '%s' '$(FUZZ_ROTATE)' | cksum | cut -d' ' -f1) % n )); 	long=$$(echo "$$targets" | awk -v f=$$first -v c=$(FUZZ_LONG_COUNT) -v n=$$n '(NR-1-f+n)%n < c'); 	echo "fuzz: $$n targets, $(FUZZTIME) each; long run ($(FUZZ_LONG)) for:" $$(echo "$$long" | sed 's/.*://') "(FUZZ_ROTATE=$(FUZZ_ROTATE))"; 	for spec in $$targets; do 		dir=$${spec%:*}; t=$${spec##*:}; fuzztime=$(FUZZTIME); 		if echo "$$long" | grep -qxF "$$spec"; then fuzztime=$(FUZZ_LONG); fi; 		for attempt in 1 2; do 			echo "fuzz $$t in $${dir#$(CURDIR)/} for $$fuzztime"; 			if $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$$fuzztime $$dir >/tmp/tcauth-fuzz.log 2>&1; then break; fi; 			if [ $$attempt = 1 ] && grep -q 'context deadline exceeded' /tmp/tcauth-fuzz.log && ! grep -q 'Failing input written' /tmp/tcauth-fuzz.log; then 				echo "  coordinator deadline race (golang/go#75804), no failing input: retrying once"; continue; fi; 			cat /tmp/tcauth-fuzz.log; exit 1; 		done; 	done

## bench: every benchmark, one run, figures side by side.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) $$($(GO) list ./... | grep -v /integration/)

clean:
	rm -rf bin
