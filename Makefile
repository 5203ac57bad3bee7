# make test: everything CI runs. It first installs what Go does not fetch (APT_PACKAGES:
# redis-server, nginx, docker-compose and chromium, for the admin page's browser test, from Debian
# packages) when a command is missing, saying what, without starting their system services;
# SKIP_DEPS=1 skips that step (make deps runs it alone). Then it vets and runs every test with -race.
SHELL := /bin/bash
GO ?= go
# Each package installs the command of its name (nginx's in /usr/sbin, outside a user's PATH).
APT_PACKAGES := redis-server nginx docker-compose chromium

.PHONY: test deps vet bench build fuzz policy-example

test: $(if $(SKIP_DEPS),,deps) vet
	$(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags "-X main.version=$(VERSION)" -o bin/swrproxy .

# deps installs the Debian packages the tests need, only when a command is missing. The tests
# start their own redis-server and nginx on free loopback ports: the system services the
# packages would start (on :6379 and :80) are kept from starting (policy-rc.d, for the install).
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
		command -v $$p >/dev/null || [ -x /usr/sbin/$$p ] || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing$$missing from Debian packages (SKIP_DEPS=1 skips this)"; \
		SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
		rcd=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
			printf '#!/bin/sh\nexit 101\n' | $$SUDO tee /usr/sbin/policy-rc.d >/dev/null && $$SUDO chmod +x /usr/sbin/policy-rc.d && rcd=1; \
		fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
		status=$$?; [ -n "$$rcd" ] && $$SUDO rm -f /usr/sbin/policy-rc.d; exit $$status; \
	fi

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

# e2e-bench runs bench/e2e.sh: the shipped stack, swrproxy asked directly, nginx proxy_cache and a
# bare server under wrk on loopback (issue 14); E2E_ARGS="seconds-per-run rounds connections", e.g. E2E_ARGS="5 2 64".
.PHONY: e2e-bench
e2e-bench:
	bench/e2e.sh $(E2E_ARGS)

# fuzz runs every fuzz target (each parser of outside bytes) for FUZZTIME each, with minimisation
# of a failing input bounded by FUZZMINTIME.
FUZZTIME ?= 30s
FUZZMINTIME ?= 10s
FUZZ_TARGETS := \
	./proxy:FuzzScanFraming ./proxy:FuzzParseRange ./proxy:FuzzABodyNeverRunsAsARequest \
	./httpcache:FuzzAppendHost ./httpcache:FuzzParseCacheControl ./httpcache:FuzzNormalizeEncoding ./httpcache:FuzzAcceptEncoding ./httpcache:FuzzDecide \
	./httpcache:FuzzParseAge ./httpcache:FuzzParseHTTPDate ./httpcache:FuzzParseSFDictionary ./httpcache:FuzzVaryValue \
	./etag:FuzzParse ./etag:FuzzNoneMatch ./etag:FuzzNormalize \
	./tiers:FuzzDecode ./invalidate:FuzzDecodeRequest ./upstream:FuzzReadCodedResponse ./upstream:FuzzParseBackend \
	./admin:FuzzDecodeServer ./admin:FuzzHostPort ./admin:FuzzSessionCookie ./admin:FuzzLoginForm ./policy:FuzzParse ./policy:FuzzAppendKey ./policy:FuzzDecodePath ./policy/wasm:FuzzDecodeRequestOut ./policy/wasm:FuzzDecodeResponseOut \
	./config:FuzzParseDuration ./config:FuzzParseSize ./internal/redisconn:FuzzParse

# The example WebAssembly policy module (README "Wasm hooks"): a WASI reactor built from Go.
policy-example:
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o examples/policy/policy.wasm ./examples/policy

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) $$pkg; \
	done
