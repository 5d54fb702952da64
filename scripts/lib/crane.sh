#!/usr/bin/env bash
# Installs go-containerregistry's `crane` (the client berth's e2e_crane tests drive) when no
# crane is on PATH. Debian ships no crane binary, only the Go sources (bookworm-backports:
# golang-github-google-go-containerregistry-dev 0.14.0, golang-1.23-go), so it is built here
# from those, offline: GOPATH mode, no module proxy.
#
#   crane.sh            builds and installs crane into /usr/local/bin (or $CRANE_DEST)
#
# Only the compiler is installed as a package. The Go source packages crane imports are
# fetched with `apt-get download` and unpacked into a scratch GOPATH: installing them would
# pull their own dependencies (some 270 packages, systemd's among them) that crane does not
# import. The scratch directory goes when the build is done; a second run finds crane on
# PATH and returns at once.
set -euo pipefail

# crane's import closure (cmd/crane of go-containerregistry 0.14.0) as bookworm and its
# backports package it: `go list -deps` of the command over these resolves every import.
SOURCES=(
  golang-github-google-go-containerregistry-dev
  golang-github-containerd-stargz-snapshotter-dev
  golang-github-docker-docker-dev
  golang-github-docker-distribution-dev
  golang-github-docker-docker-credential-helpers-dev
  golang-github-docker-go-connections-dev
  golang-github-docker-go-units-dev
  golang-github-google-go-cmp-dev
  golang-github-klauspost-compress-dev
  golang-github-cespare-xxhash-dev
  golang-github-mitchellh-go-homedir-dev
  golang-github-opencontainers-go-digest-dev
  golang-github-opencontainers-image-spec-dev
  golang-github-gogo-protobuf-dev
  golang-github-pkg-errors-dev
  golang-github-sirupsen-logrus-dev
  golang-github-spf13-cobra-dev
  golang-github-spf13-pflag-dev
  golang-github-vbatts-tar-split-dev
  golang-golang-x-sync-dev
  golang-golang-x-sys-dev
)
GO=/usr/lib/go-1.23/bin/go
DEST="${CRANE_DEST:-/usr/local/bin}"

if command -v crane >/dev/null 2>&1; then
  exit 0
fi

lib="$(dirname "${BASH_SOURCE[0]}")"
. "$lib/packages.sh"
sudo_cmd=()
[ "$(id -u)" = 0 ] || sudo_cmd=(sudo)

# The backports suite of this Debian release, added (signed by Debian's archive key) when
# no apt source names it yet.
codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
[ -n "$codename" ] || {
  echo "crane.sh: no VERSION_CODENAME in /etc/os-release (not Debian?)" >&2
  exit 1
}
if ! grep -rqs -- "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "crane.sh: adding ${codename}-backports to apt's sources" >&2
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$codename" | "${sudo_cmd[@]}" tee /etc/apt/sources.list.d/berth-backports.sources >/dev/null
  "${sudo_cmd[@]}" apt-get update -qq
fi
install_missing "$GO:golang-1.23-go"

started=$SECONDS
scratch="$(mktemp -d "${TMPDIR:-/tmp}/berth-crane.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
# As root, apt would hand the download to its sandbox user, who cannot write in a private
# scratch directory (and says so).
download=()
[ "$(id -u)" != 0 ] || download=(-o APT::Sandbox::User=root)
# Package lists older than the backports source (or none yet) are refreshed once.
(cd "$scratch" && apt-get download -qq "${download[@]}" "${SOURCES[@]}") || {
  "${sudo_cmd[@]}" apt-get update -qq
  (cd "$scratch" && apt-get download -qq "${download[@]}" "${SOURCES[@]}")
}
for deb in "$scratch"/*.deb; do
  dpkg-deb -x "$deb" "$scratch/root"
done
GO111MODULE=off GOPATH="$scratch/root/usr/share/gocode" GOFLAGS= GOTOOLCHAIN=local \
  GOCACHE="$scratch/cache" CGO_ENABLED=0 \
  "$GO" build -o "$scratch/crane" github.com/google/go-containerregistry/cmd/crane
"${sudo_cmd[@]}" install -m 0755 "$scratch/crane" "$DEST/crane"
echo "crane.sh: built $DEST/crane from Debian's sources in $((SECONDS - started)) s" >&2
