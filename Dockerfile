# syntax=docker/dockerfile:1
#
# photo-gateway container image.
#   docker build -t photo-gateway:dev \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# Stages: chef (toolchain + cargo-chef) -> planner (dependency recipe) ->
# builder (cached dependency layer, then the crate) -> distroless runtime.
# The builder is Debian 12 (bookworm) so the binary's glibc matches the runtime.

ARG RUST_VERSION=1.95
ARG CARGO_CHEF_VERSION=0.1.78

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
ARG CARGO_CHEF_VERSION
# Same profile settings for `chef cook` and `build`, so the cooked dependencies are reused.
ENV CARGO_TERM_COLOR=never \
    CARGO_PROFILE_RELEASE_STRIP=symbols
# make: the allocator (tikv-jemalloc-sys) builds jemalloc from its C sources (bookworm's make).
RUN apt-get update \
    && apt-get install -y --no-install-recommends make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is rebuilt only when Cargo.toml / Cargo.lock change.
# Production features only: the default `sandbox` feature (emulators) stays out. `-p photo-gateway`:
# the workspace's default members include the emulator crate, whose dependency features (hyper's
# server, ...) would otherwise be unified into the gateway's build.
RUN cargo chef cook --release --locked --no-default-features -p photo-gateway --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --no-default-features -p photo-gateway --bin photo-gateway \
    && install -D -m 0755 target/release/photo-gateway /out/photo-gateway

# Distroless "cc": glibc, libgcc, CA certificates (/etc/ssl/certs), tzdata; no shell.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="photo-gateway" \
      org.opencontainers.image.description="Sets Microsoft 365 profile photos on behalf of signed-in users: JWT validation, cached On-Behalf-Of exchange, Microsoft Graph upload." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=builder /out/photo-gateway /usr/local/bin/photo-gateway
USER 65532:65532
# Smoke test in the runtime image: exec form needs no shell; fails the build if a shared library is missing.
RUN ["/usr/local/bin/photo-gateway", "--version"]
ENV PHOTO_GATEWAY_LISTEN_ADDR=0.0.0.0:8080 \
    PHOTO_GATEWAY_METRICS_ADDR=0.0.0.0:9090 \
    PHOTO_GATEWAY_LOG_FORMAT=json
# 8080: API, /healthz, /readyz. 9090: Prometheus /metrics.
EXPOSE 8080 9090
# Kubernetes ignores HEALTHCHECK; Docker and compose honour it. No shell needed.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/photo-gateway", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/photo-gateway"]
CMD ["serve"]
