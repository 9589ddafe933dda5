# Builder for QEMU trees from 8.1 on (they need meson >= 1.5): Debian trixie.
# Build dependencies for the feature-trimmed x86_64-softmmu configuration,
# ccache, the tools to fetch and unpack Debian source packages, and the
# run-time firmware (seabios, qemu-system-data) the reproducer boots with.
FROM debian:trixie
ENV DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
RUN sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > /etc/apt/sources.list.d/patchcheck-src.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential ccache ninja-build meson pkgconf python3 python3-venv python3-setuptools python3-pycotap \
      flex bison libglib2.0-dev libpixman-1-dev zlib1g-dev libfdt-dev \
      git ca-certificates dpkg-dev xz-utils \
      seabios qemu-system-data \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
LABEL org.patchcheck.generation="trixie"
