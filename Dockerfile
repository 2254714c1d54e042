# imds-guard container image: the release binary on Debian bookworm-slim with both iptables
# backends (iptables-legacy and iptables-nft, from Debian's iptables package), conntrack, and
# iproute2's tc (to look for BPF programs that may bypass the rules).
#
#   docker build -t imds-guard:0.1.0 .
#
# Not built by this repository's tests or CI (they have no container engine): the build is kept
# plain so that what it does can be read off this file.

# The toolchain the lock file is tested with; Cargo.toml's rust-version is the oldest one allowed.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# A glibc build on the same Debian release as the runtime below, so the libraries match.
RUN cargo build --release --locked --bin imds-guard \
 && cp target/release/imds-guard /imds-guard

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables conntrack \
    iproute2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /imds-guard /usr/local/bin/imds-guard
# Runs as root on purpose: managing netfilter needs NET_ADMIN (and NET_RAW for iptables-legacy),
# and Kubernetes gives added capabilities only to uid 0. The DaemonSet drops every other
# capability, forbids privilege escalation and mounts the root filesystem read-only.
# One malloc arena: less memory held after bursts (README "Performance").
ENV MALLOC_ARENA_MAX=1
ENTRYPOINT ["imds-guard"]
CMD ["run", "--config", "/etc/imds-guard/config.toml"]
