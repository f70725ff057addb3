# Build the manager binary.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# The module files first: the downloaded dependencies stay in a cached layer
# until go.mod or go.sum change, whatever happens to the source.
COPY go.mod go.mod
COPY go.sum go.sum
RUN go mod download

# The packages the manager is built from (.dockerignore keeps tests out).
COPY cmd/ cmd/
COPY api/ api/
COPY internal/ internal/

# GOARCH has no default so that the binary is built for the platform of the
# image being built: with `docker build` that is the builder's own (linux/arm64
# on Apple silicon), with `docker buildx --platform` each platform in turn.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -o manager ./cmd/manager

# A minimal, shell-less base image that runs as a non-root user.
# See https://github.com/GoogleContainerTools/distroless for more details.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager .
USER 65532:65532

ENTRYPOINT ["/manager"]
