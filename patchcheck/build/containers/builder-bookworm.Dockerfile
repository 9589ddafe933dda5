# Builder for QEMU trees up to 8.0 (meson < 1.5 is enough): Debian bookworm.
# Build dependencies for the feature-trimmed x86_64-softmmu configuration,
# ccache, the tools to fetch and unpack Debian source packages, and the
# run-time firmware (seabios, qemu-system-data) the reproducer boots with.
FROM debian:bookworm
ENV DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
RUN sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > /etc/apt/sources.list.d/patchcheck-src.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential ccache ninja-build meson pkg-config python3 python3-venv python3-setuptools \
      flex bison libglib2.0-dev libpixman-1-dev zlib1g-dev libfdt-dev \
      git ca-certificates dpkg-dev xz-utils \
      seabios qemu-system-data \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
LABEL org.patchcheck.generation="bookworm"
