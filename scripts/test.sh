#!/usr/bin/env bash
# Runs berth's whole test suite: unit, router, conformance and end-to-end tests.
# Installs what the end-to-end tests drive (Debian's skopeo and docker-registry, i.e.
# CNCF distribution 2.8.2, pebble, an ACME test CA, podman, containerd and redis-server)
# when missing; they then run against the real binary. moto (PyPI) serves S3 for the S3
# driver's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/packages.sh
install_missing skopeo:skopeo docker-registry:docker-registry openssl:openssl curl:curl \
  strace:strace htpasswd:apache2-utils pebble:pebble podman:podman containerd:containerd \
  redis-server:redis-server
# moto's server mode: the S3-compatible server the S3 driver's tests start.
install_missing_pip "moto_server:moto[server]"

# The end-to-end tests fail (rather than skip) when a tool they drive is missing.
export BERTH_E2E_REQUIRED=1
cargo test --workspace --all-targets "$@"
