#!/usr/bin/env bash
# Runs berth's whole test suite: unit, router, conformance and end-to-end tests.
# Installs what the end-to-end tests drive (Debian's skopeo and docker-registry, i.e.
# CNCF distribution 2.8.2, pebble, an ACME test CA, podman, containerd, redis-server,
# nginx (a load balancer in front of a fleet), Docker (docker.io: dockerd and docker),
# Ceph's radosgw, and go-containerregistry's crane, built from Debian's Go sources by
# scripts/lib/crane.sh: about a minute and a half the first time) when missing; they then
# run against the real binary. The S3 tests run on moto (PyPI), which is fast, and on one
# radosgw started here for the whole run (scripts/lib/rgw.sh: about 15 s; stopped when
# this script exits), which checks signatures.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/packages.sh
install_missing skopeo:skopeo docker-registry:docker-registry openssl:openssl curl:curl \
  strace:strace htpasswd:apache2-utils pebble:pebble podman:podman containerd:containerd \
  redis-server:redis-server gzip:gzip tar:tar nginx:nginx-light dockerd:docker.io
bash scripts/lib/rgw.sh install
bash scripts/lib/crane.sh
# moto's server mode: the S3-compatible server the S3 driver's tests start.
install_missing_pip "moto_server:moto[server]"

# One radosgw for every test binary (they read BERTH_RGW_ENDPOINT and the keys; each
# test makes its own bucket).
rgw_dir="$(mktemp -d "${TMPDIR:-/tmp}/berth-test-rgw.XXXXXX")"
trap 'bash scripts/lib/rgw.sh stop "$rgw_dir"' EXIT
bash scripts/lib/rgw.sh start "$rgw_dir" --owner $$ >/dev/null
set -a
. "$rgw_dir/env"
set +a

# The end-to-end tests fail (rather than skip) when a tool they drive is missing.
export BERTH_E2E_REQUIRED=1
cargo test --workspace --all-targets "$@"
