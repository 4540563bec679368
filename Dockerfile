# syntax=docker/dockerfile:1
# The operator image: a static musl binary on distroless, running as UID/GID 65532 (nonroot).
#
#   docker build -t ghes-oauth-operator:0.1.0 .
#   docker run --rm ghes-oauth-operator:0.1.0 version

# --- build -------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# musl-gcc: aws-lc-rs (rustls's crypto provider) compiles C, and must do so for musl.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CARGO_TERM_COLOR=never

WORKDIR /src

# Dependencies first, against stub sources, so this layer is reused until a Cargo.toml or
# Cargo.lock change. The workspace's test doubles (crates/) need stubs too: Cargo reads every
# member, though the production build below (`--no-default-features`: no `demo`, `emulator` or
# `bench`) links neither.
COPY Cargo.toml Cargo.lock ./
COPY crates/ghes-emulator/Cargo.toml crates/ghes-emulator/
COPY crates/kube-testkit/Cargo.toml crates/kube-testkit/
RUN mkdir -p src crates/ghes-emulator/src crates/kube-testkit/src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs crates/ghes-emulator/src/lib.rs crates/kube-testkit/src/lib.rs \
 && cargo build --release --locked --no-default-features -p ghes-oauth-operator \
      --target x86_64-unknown-linux-musl \
 && rm -rf src crates

# The operator itself (.dockerignore keeps the rest out).
COPY . .
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --no-default-features -p ghes-oauth-operator \
      --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/ghes-oauth-operator /ghes-oauth-operator

# --- run ---------------------------------------------------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ghes-oauth-operator" \
      org.opencontainers.image.description="Kubernetes operator that manages GitHub Enterprise Server OAuth authorizations declaratively" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=builder /ghes-oauth-operator /usr/local/bin/ghes-oauth-operator
USER 65532:65532
# The admin server (/livez, /readyz, /metrics) when run with --admin-address=0.0.0.0:8080.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ghes-oauth-operator"]
CMD ["run"]
