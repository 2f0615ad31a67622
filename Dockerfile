# syntax=docker/dockerfile:1
# The contiguity-operator image: a static (musl) binary on distroless/static, run as the
# unprivileged user 65532 with a read-only root filesystem in mind (it writes no files).
#
#   docker build -t contiguity-operator:dev .
#   docker run --rm contiguity-operator:dev --help
#
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 . (each stage runs on the
# target platform; Alpine's Rust targets musl natively, so the binary is static everywhere).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-alpine AS builder
# musl-dev: the C runtime that ring's C and assembly parts and the final static link need.
RUN apk add --no-cache musl-dev
# crt-static is musl's default; said explicitly because distroless/static has no libc at all.
ENV RUSTFLAGS="-C target-feature=+crt-static"
WORKDIR /src
# The whole crate (.dockerignore leaves out target/, .git and the non-Rust parts): Cargo checks
# that every target declared in Cargo.toml (benches, tests) has its source.
COPY . .
# Cache mounts keep the crate registry and compiled dependencies between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin contiguity-operator \
 && install -D -m 0755 target/release/contiguity-operator /out/contiguity-operator

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="contiguity-operator" \
      org.opencontainers.image.description="Kubernetes operator that manages Contiguity phone-number leases" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/contiguity-operator /usr/local/bin/contiguity-operator
# distroless's "nonroot" user; numeric so that runAsNonRoot can verify it.
USER 65532:65532
# /metrics, /livez and /readyz (METRICS_ADDR).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/contiguity-operator", "run"]
