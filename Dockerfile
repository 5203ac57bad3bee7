# syntax=docker/dockerfile:1
#
# swrproxy image: static binaries on distroless (no shell, no package manager), non-root.
#
#   docker build -t swrproxy .                    # the proxy (the last stage, the default)
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t swrproxy .
#                                                 # the same, with the version --version prints
#   docker build --target origin -t swr-origin .  # the demo origin of docker-compose.yml
#
# Needs BuildKit for the cache mounts: the default of `docker build` and Compose v2; with the old
# docker-compose v1 set DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
# What `swrproxy --version` prints (the context has no .git, so the commit reads "unknown").
ARG VERSION=dev
WORKDIR /src
# Dependencies first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/swrproxy . && \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/healthcheck ./cmd/healthcheck && \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/origin ./examples/origin

# The demo origin (examples/origin): docker-compose.yml builds this target.
FROM gcr.io/distroless/static-debian12:nonroot AS origin
COPY --from=build /out/origin /origin
COPY --from=build /out/healthcheck /healthcheck
USER nonroot:nonroot
EXPOSE 9000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/healthcheck", "http://127.0.0.1:9000/healthz"]
ENTRYPOINT ["/origin"]

# swrproxy. Configure it with SWR_* environment variables (see .env.example) or flags.
FROM gcr.io/distroless/static-debian12:nonroot AS swrproxy
COPY --from=build /out/swrproxy /swrproxy
COPY --from=build /out/healthcheck /healthcheck
USER nonroot:nonroot
ENV SWR_LISTEN=:8000
EXPOSE 8000
# /healthcheck probes GET /_swr/healthz on the port of SWR_ADMIN_LISTEN, else SWR_LISTEN.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/healthcheck"]
ENTRYPOINT ["/swrproxy"]
