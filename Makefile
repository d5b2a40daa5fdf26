# tcauth — build, test, bench, fuzz.
#
# `make test` is what CI runs (.ci/run). It installs what the tests need
# (npm packages from the committed lockfile, Debian packages when a test
# needs one) and then runs lint, unit tests with -race, short fuzz runs,
# and the integration tests.

GO        ?= go
PKGS      := ./...
FUZZTIME  ?= 8s
BENCHTIME ?= 1s
NODE_DIR  := integration/node
BIN       := bin/tcauth

.PHONY: all build test test-unit test-integration lint fuzz bench deps deps-node clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tcauth

## test: everything CI runs.
test: deps lint test-unit fuzz test-integration
	@echo "make test: all checks passed"

## deps: install what the tests need on a fresh machine.
deps: deps-node

deps-node:
	@command -v node >/dev/null 2>&1 || { echo "installing nodejs and npm from Debian"; \
		apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
	@if [ ! -d $(NODE_DIR)/node_modules ] || [ $(NODE_DIR)/package-lock.json -nt $(NODE_DIR)/node_modules ]; then \
		echo "npm ci in $(NODE_DIR)"; npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error && touch $(NODE_DIR)/node_modules; fi

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './$(NODE_DIR)/*')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

test-unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /integration/)

test-integration: build
	TCAUTH_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 15m ./integration/...

## fuzz: a short run of every fuzz target (FUZZTIME each).
fuzz:
	@set -e; for dir in $$($(GO) list -f '{{.Dir}}' ./... ); do \
		for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do \
			echo "fuzz $$t in $${dir#$(CURDIR)/} for $(FUZZTIME)"; \
			$(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$dir >/tmp/tcauth-fuzz.log 2>&1 || { cat /tmp/tcauth-fuzz.log; exit 1; }; \
		done; \
	done

## bench: every benchmark, one run, figures side by side.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) $$($(GO) list ./... | grep -v /integration/)

clean:
	rm -rf bin
