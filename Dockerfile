# imds-guard's container image, for a build with a registry at hand:
#
#   docker build -t imds-guard:0.1.0 .
#
# The same image as `bash deploy/image/build.sh`, which needs no registry and no container engine
# (docs/deploy.md, "The image"): the release binary on a root filesystem made by deploy/image/rootfs.sh from
# the Debian packages named in deploy/image/packages, holding only what the guard runs (both
# iptables backends, conntrack, tc) and the libraries they load. No shell, no package manager.
# tests/image.rs checks that this file and build.sh give the image the same packages, entrypoint,
# command, user, environment and labels.

# The toolchain of rust-toolchain.toml (tests/layers.rs checks they agree); Cargo.toml's
# rust-version is the oldest one allowed.
ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# A glibc build on the same Debian release as the root filesystem, so the libraries match.
RUN cargo build --release --locked --no-default-features --bin imds-guard \
 && cp target/release/imds-guard /imds-guard

FROM debian:bookworm AS rootfs
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mmdebstrap \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/image/ /image/
COPY --from=build /imds-guard /imds-guard
ARG SOURCE_DATE_EPOCH=0
RUN bash /image/rootfs.sh /imds-guard /rootfs

FROM scratch
COPY --from=rootfs /rootfs/ /
# Runs as root on purpose: managing netfilter needs NET_ADMIN (and NET_RAW for iptables-legacy),
# and Kubernetes gives added capabilities only to uid 0. The DaemonSet drops every other
# capability, forbids privilege escalation and mounts the root filesystem read-only.
USER 0
WORKDIR /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# One malloc arena: less memory held after bursts (docs/performance.md).
ENV MALLOC_ARENA_MAX=1
ARG REVISION=unknown
ARG SOURCE="unknown (revision ${REVISION})"
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="imds-guard"
LABEL org.opencontainers.image.description="Guards the cloud instance metadata service from the pods of a Kubernetes node"
LABEL org.opencontainers.image.version="0.1.0"
LABEL org.opencontainers.image.revision="${REVISION}"
LABEL org.opencontainers.image.source="${SOURCE}"
LABEL org.opencontainers.image.licenses="Apache-2.0"
LABEL org.opencontainers.image.created="${CREATED}"
ENTRYPOINT ["/usr/local/bin/imds-guard"]
CMD ["run", "--config", "/etc/imds-guard/config.toml"]
