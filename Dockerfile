# syntax=docker/dockerfile:1
# outbox as a container: a mail relay sidecar (see docker/README.md).
# Debian 12 slim, two stages: the build stage compiles with Debian's -dev
# packages, the runtime stage holds only the shared libraries, the two
# binaries (plus the sendmail/mailq/newaliases links), CA certificates and
# the entry point. Runs as the unprivileged user outbox (uid 10025).
# Untested here: no Docker engine runs in this project's CI; the entry
# point's logic is tested directly (tests/integration/test_entrypoint.py).

FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake gcc make pkg-config libc6-dev \
      libuv1-dev libwolfssl-dev libc-ares-dev libinih-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
 && cmake --build /build -j"$(nproc)" \
 && DESTDIR=/out cmake --install /build --prefix /usr \
 && rm -rf /out/usr/share/man

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libuv1 libwolfssl35 libc-ares2 libinih1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10025 outbox \
 && useradd --system --uid 10025 --gid outbox --no-create-home \
      --home-dir /var/spool/outbox --shell /usr/sbin/nologin outbox \
 && install -d -o outbox -g outbox -m 0751 /var/spool/outbox \
 && install -d -o outbox -g outbox -m 1733 /var/spool/outbox/maildrop \
 && install -d -o outbox -g outbox -m 0700 /run/outbox
COPY --from=build /out/ /
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/outbox-entrypoint

# Container defaults, each overridable with -e / env: (any key works as
# OUTBOX_<SECTION>_<KEY>; secrets as OUTBOX_<SECTION>_<KEY>__FILE).
# Loopback only: a sidecar shares the pod's network namespace with the app.
# Port 25 as a non-root user needs net.ipv4.ip_unprivileged_port_start <= 25
# (Docker's default since 20.10 is 0; Kubernetes: a pod sysctl), or use
# OUTBOX_LISTEN_ADDRESS=127.0.0.1:2525.
ENV OUTBOX_LISTEN_ADDRESS=127.0.0.1:25 \
    OUTBOX_LOG_TARGET=stderr \
    OUTBOX_SECRETS_DIR=/run/outbox/secrets

USER outbox
WORKDIR /var/spool/outbox
# The queue: mount a persistent volume here, or queued mail dies with the
# container ("250 means stored" holds only as long as the volume lives).
VOLUME ["/var/spool/outbox"]
EXPOSE 25
STOPSIGNAL SIGTERM
# Through the entry point, so that *__FILE secrets apply to the check too.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/outbox-entrypoint", "outbox", "status", "--check"]
ENTRYPOINT ["/usr/local/bin/outbox-entrypoint"]
CMD []
