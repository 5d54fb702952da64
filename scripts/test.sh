#!/usr/bin/env bash
# Runs berth's whole test suite: unit, router, conformance and end-to-end tests.
# Installs what the end-to-end tests drive (Debian's skopeo and docker-registry, i.e.
# CNCF distribution 2.8.2, pebble, an ACME test CA, podman and containerd) when missing;
# they then run against the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v strace >/dev/null 2>&1 || missing+=(strace)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
command -v pebble >/dev/null 2>&1 || missing+=(pebble)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The end-to-end tests fail (rather than skip) when a tool they drive is missing.
export BERTH_E2E_REQUIRED=1
cargo test --workspace --all-targets "$@"
