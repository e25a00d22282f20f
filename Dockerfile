# syntax=docker/dockerfile:1
#
# One image, two binaries: /manager (the operator) and /switchboard (every
# service: `switchboard serve <name>`). The operator's --services-image
# defaults to this same image at the same version, so they move in lockstep.
#
#   make docker-build IMG=ghcr.io/switchboard-dev/switchboard:v0.1.0
#
# The build itself is hack/build-static.sh, which `make build-static` also
# runs: CGO_ENABLED=0, -trimpath, version stamped with -ldflags.

FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH hack/build-static.sh /out "$VERSION"

# Static, no shell, no package manager; runs as the "nonroot" user (65532),
# the UID the operator's pod security contexts expect.
FROM gcr.io/distroless/static:nonroot
LABEL org.opencontainers.image.source="https://github.com/switchboard-dev/switchboard" \
      org.opencontainers.image.description="Switchboard operator (/manager) and services (/switchboard)"
COPY --from=builder /out/manager /out/switchboard /
USER 65532:65532
ENTRYPOINT ["/manager"]
