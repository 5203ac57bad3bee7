# make test: everything CI runs. It installs what Go does not fetch (redis-server, nginx and
# docker-compose from Debian packages) when missing, then vets and runs every test with -race.
SHELL := /bin/bash
GO ?= go
APT_PACKAGES := redis-server nginx docker-compose

.PHONY: test deps vet bench build fuzz

test: deps vet
	$(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/swrproxy .

# deps installs the Debian packages the tests need, only when a command is missing.
deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

# fuzz runs every fuzz target (each parser of outside bytes) for FUZZTIME each.
FUZZTIME ?= 20s
FUZZ_TARGETS := \
	./proxy:FuzzScanFraming \
	./httpcache:FuzzAppendHost ./httpcache:FuzzParseCacheControl ./httpcache:FuzzNormalizeEncoding ./httpcache:FuzzDecide \
	./etag:FuzzParse ./etag:FuzzNoneMatch ./etag:FuzzNormalize \
	./tiers:FuzzDecode ./invalidate:FuzzDecodeRequest \
	./config:FuzzParseDuration ./config:FuzzParseSize

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done
