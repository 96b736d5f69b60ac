# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust toolchain, run on distroless (glibc + libgcc,
# no shell, no package manager) as a non-root user.

FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
COPY config config
COPY models models
COPY assets assets
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ragbrain \
 && cp target/release/ragbrain /ragbrain \
 && mkdir -p /data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /ragbrain /usr/local/bin/ragbrain
# The embedded stores write here; mount a volume to keep data across containers.
COPY --from=build --chown=65532:65532 /data /var/lib/ragbrain
ENV RAGBRAIN__SERVER__HOST=0.0.0.0 \
    RAGBRAIN__SERVER__PORT=8080 \
    RAGBRAIN__SERVER__DATA_DIR=/var/lib/ragbrain \
    RAGBRAIN__LOG__FORMAT=json
USER 65532:65532
# The API: HTTP, or HTTPS with server.tls.* (certificates mounted under
# /etc/ragbrain/tls). With RAGBRAIN__SERVER__ADMIN_PORT=9090 the plain health-and-
# metrics port is 9090; publish it as well.
EXPOSE 8080
VOLUME ["/var/lib/ragbrain"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/ragbrain", "healthcheck", "--url", "http://127.0.0.1:8080/health/live"]
ENTRYPOINT ["/usr/local/bin/ragbrain"]
CMD ["serve"]
