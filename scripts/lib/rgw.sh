#!/usr/bin/env bash
# A one-node Ceph object gateway for berth's tests and benchmark: one monitor, one OSD and
# radosgw (S3), from Debian's packages, on free loopback ports, with everything it writes
# (config, monitor and OSD data, logs, sockets, pid files) under one directory.
#
#   rgw.sh install
#       Installs radosgw, ceph-mon, ceph-osd and ceph-common when missing.
#   rgw.sh start DIR [--store memstore|bluestore] [--owner PID]
#       Stops and wipes whatever an earlier start left in DIR, starts the cluster, creates
#       an S3 user and checks that a SigV4-signed request from it works. Prints
#           BERTH_RGW_ENDPOINT=http://127.0.0.1:PORT
#           BERTH_RGW_ACCESSKEY=...
#           BERTH_RGW_SECRETKEY=...
#       (also written to DIR/env, ready for `. DIR/env`), and each step's time on stderr.
#       memstore (the default) keeps the OSD's data in memory (up to 4 GiB): the faster
#       start, for tests; bluestore writes it to a sparse 64 GiB file in DIR, for the
#       benchmark. With --owner, a watchdog stops the cluster and removes DIR once process
#       PID has exited (a test binary that is killed leaves nothing running).
#   rgw.sh stop DIR
#       Stops every daemon started from DIR (by pid file, and any other whose command
#       line names DIR/ceph.conf) and the watchdog, then removes DIR.
#   rgw.sh mb DIR BUCKET
#       Creates BUCKET on the gateway started in DIR (a signed PUT with the user's keys).
#   rgw.sh rb DIR BUCKET
#       Removes BUCKET and every object in it at once (radosgw-admin, no garbage
#       collection pass), freeing the OSD's space.
#
# Tested as root (as CI runs). Known quirks of this gateway (Ceph 16): CompleteMultipartUpload
# answers an empty ETag; a PUT without a body must still carry Content-Length (411).
set -euo pipefail

die() {
  echo "rgw.sh: $*" >&2
  exit 1
}

install() {
  local lib
  lib="$(dirname "${BASH_SOURCE[0]}")"
  . "$lib/packages.sh"
  install_missing radosgw:radosgw ceph-mon:ceph-mon ceph-osd:ceph-osd \
    radosgw-admin:ceph-common ceph:ceph-common monmaptool:ceph-base curl:curl
}

# The daemons started from $D: pids from their pid files, plus any process of ours whose
# command line names $D/ceph.conf (a start interrupted before its pid file was written).
daemons() {
  local f p
  for f in "$D"/run/*.pid; do
    [ -f "$f" ] || continue
    p="$(cat "$f" 2>/dev/null || true)"
    [ -n "$p" ] && names_conf "$p" && echo "$p"
  done
  for f in /proc/[0-9]*/cmdline; do
    p="${f#/proc/}"
    p="${p%/cmdline}"
    names_conf "$p" && echo "$p"
  done
  return 0
}

# Whether process $1 is a Ceph daemon started with -c $D/ceph.conf.
names_conf() {
  local comm
  comm="$(cat "/proc/$1/comm" 2>/dev/null)" || return 1
  case "$comm" in ceph-mon | ceph-osd | radosgw) ;; *) return 1 ;; esac
  tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qxF "$D/ceph.conf"
}

# Which of the pids given are still running (on one line).
alive() {
  local p out=""
  for p in "$@"; do
    if kill -0 "$p" 2>/dev/null; then out="$out $p"; fi
  done
  echo "$out"
}

stop() {
  local pids p i
  if [ -f "$D/run/watchdog.pid" ]; then
    p="$(cat "$D/run/watchdog.pid")"
    # Not the watchdog running this very stop.
    if [ "$p" != "${WATCHDOG_SELF:-}" ]; then kill "$p" 2>/dev/null || true; fi
  fi
  pids="$(daemons | sort -u | tr '\n' ' ')"
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null || true
    # Up to 2 s to exit, then SIGKILL: the data is thrown away anyway (radosgw alone
    # takes about 6 s over a graceful exit).
    for i in $(seq 1 20); do
      pids="$(alive $pids)"
      [ -z "${pids// /}" ] && break
      sleep 0.1
    done
    # shellcheck disable=SC2086
    [ -n "${pids// /}" ] && kill -9 $pids 2>/dev/null || true
  fi
  rm -rf "$D"
}

# A free TCP port on 127.0.0.1 (nothing listening on it now), from the dynamic range.
free_port() {
  local p hex
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    hex="$(printf '%04X' "$p")"
    if ! awk 'NR > 1 { print $2 }' /proc/net/tcp /proc/net/tcp6 2>/dev/null |
      grep -q ":$hex\$"; then
      echo "$p"
      return
    fi
  done
  die "no free port found"
}

# Seconds since the epoch, with fractions.
now() { date +%s.%N; }

# Ends the step being timed (printing its time) and starts step $1.
step_started=0
step() {
  local t
  t="$(now)"
  if [ -n "${step_name:-}" ]; then
    awk -v n="$step_name" -v a="$step_started" -v b="$t" \
      'BEGIN { printf "rgw.sh: %-14s %5.1f s\n", n, b - a }' >&2
  fi
  step_name="$1"
  step_started="$t"
}

# The last lines of every log, for a failed start.
show_logs() {
  local f
  for f in "$D"/log/*.log; do
    [ -f "$f" ] || continue
    echo "--- $f" >&2
    tail -n 20 "$f" >&2
  done
}

start() {
  local store=memstore owner=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --store) store="$2"; shift 2 ;;
      --owner) owner="$2"; shift 2 ;;
      *) die "unknown argument $1" ;;
    esac
  done
  for c in radosgw ceph-mon ceph-osd ceph radosgw-admin monmaptool curl; do
    command -v "$c" >/dev/null || die "$c is not installed (rgw.sh install)"
  done
  local t0
  t0="$(now)"
  step cleanup
  stop
  mkdir -p "$D"/{mon,osd,run,log,rgw}
  # A start that fails half-way leaves nothing running (its logs were shown).
  trap 'status=$?; if [ "$status" != 0 ]; then stop; fi' EXIT
  local fsid mon_port rgw_port store_conf
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  mon_port="$(free_port)"
  rgw_port="$(free_port)"
  while [ "$rgw_port" = "$mon_port" ]; do rgw_port="$(free_port)"; done
  case "$store" in
    memstore)
      store_conf="osd objectstore = memstore
memstore device bytes = 4294967296" ;;
    bluestore)
      # Sparse: only what is written takes disk space.
      store_conf="osd objectstore = bluestore
bluestore block path = $D/block.img
bluestore block create = true
bluestore block size = 68719476736
bluestore block db create = false
bluestore block wal create = false
bluestore fsck on mount = false" ;;
    *) die "--store takes memstore or bluestore" ;;
  esac
  # No cephx (nothing but loopback reaches it); S3 requests are still checked against
  # the user's keys. One replica, few placement groups: a single OSD.
  cat >"$D/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
public addr = 127.0.0.1
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
run dir = $D/run
log file = $D/log/\$name.log
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
keyring = $D/keyring
[mon.a]
mon data = $D/mon
[osd.0]
osd data = $D/osd
$store_conf
# The OSD is placed in the CRUSH map by this script; at start it sends no command of its
# own (those raced with its first monitor map and failed with "wrong fsid").
osd crush update on start = false
osd class update on start = false
osd max object name len = 460
osd max object namespace len = 64
[client.rgw.a]
# Without TCP_NODELAY the gateway sends a response's body after its headers only once
# the client has acknowledged them, which a client delaying its ACKs does 40 ms later:
# every GET, LIST and HEAD of a missing key took 40-50 ms here instead of 2-5.
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw data = $D/rgw
EOF
  local conf=(-c "$D/ceph.conf")
  # Every ceph tool reads it too (the -c of a daemon is not passed on to everything it runs).
  export CEPH_CONF="$D/ceph.conf"
  if [ -n "$owner" ]; then
    # Detached, so that it outlives this script; WATCHDOG_SELF keeps its stop from
    # killing itself. It stops nothing if DIR holds another cluster by then (a later
    # start there, whose own watchdog watches its own owner).
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done
      if [ -f "$3/ceph.conf" ] && ! grep -qxF "fsid = $4" "$3/ceph.conf"; then exit 0; fi
      WATCHDOG_SELF=$$ exec bash "$2" stop "$3"' \
      watchdog "$owner" "$(realpath "${BASH_SOURCE[0]}")" "$D" "$fsid" \
      </dev/null >/dev/null 2>&1 &
    echo $! >"$D/run/watchdog.pid"
  fi

  step monitor
  monmaptool --create --clobber --addv a "[v1:127.0.0.1:$mon_port]" --fsid "$fsid" \
    "$D/monmap" >/dev/null
  ceph-mon "${conf[@]}" --mkfs -i a --monmap "$D/monmap" >"$D/log/mkfs-mon.out" 2>&1 ||
    { show_logs; die "ceph-mon --mkfs failed"; }
  ceph-mon "${conf[@]}" -i a || { show_logs; die "ceph-mon did not start"; }

  step osd
  local osd_uuid osd
  osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
  osd="$(timeout 60 ceph "${conf[@]}" osd create "$osd_uuid")" ||
    { show_logs; die "ceph osd create failed"; }
  [ "$osd" = 0 ] || die "the new OSD is osd.$osd, not osd.0"
  timeout 60 ceph "${conf[@]}" osd crush add osd.0 1 root=default host=localhost \
    >"$D/log/crush.out" 2>&1 || { cat "$D/log/crush.out" >&2; die "ceph osd crush add failed"; }
  ceph-osd "${conf[@]}" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$D/log/mkfs-osd.out" 2>&1 ||
    { show_logs; die "ceph-osd --mkfs failed"; }
  ceph-osd "${conf[@]}" -i 0 >"$D/log/osd-start.out" 2>&1 ||
    { show_logs; die "ceph-osd did not start"; }

  step gateway
  radosgw "${conf[@]}" -n client.rgw.a >"$D/log/rgw-start.out" 2>&1 ||
    { show_logs; die "radosgw did not start"; }
  local endpoint="http://127.0.0.1:$rgw_port" i
  for i in $(seq 1 600); do
    curl -s -o /dev/null "$endpoint/" && break
    [ "$i" = 600 ] && { show_logs; die "radosgw never answered on $endpoint"; }
    sleep 0.1
  done

  step user
  local key secret
  key="BERTH$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n' | tr a-f A-F)"
  secret="$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')"
  timeout 60 radosgw-admin "${conf[@]}" user create --uid=berth --display-name=berth \
    --access-key="$key" --secret-key="$secret" >/dev/null 2>"$D/log/user.out" ||
    { cat "$D/log/user.out" >&2; die "radosgw-admin user create failed"; }

  # The first bucket makes the gateway create its data pools (a few seconds): done here
  # with a signed PUT (which also proves the keys work), not in the first test.
  step "first bucket"
  local sig=(-sS --fail-with-body --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret"
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
  for i in $(seq 1 30); do
    curl "${sig[@]}" -X PUT -H "Content-Length: 0" "$endpoint/berth-ready" >/dev/null 2>&1 && break
    [ "$i" = 30 ] && { show_logs; curl "${sig[@]}" -X PUT -H "Content-Length: 0" \
      "$endpoint/berth-ready" >&2 || true; die "a signed bucket creation never succeeded"; }
    sleep 1
  done
  curl "${sig[@]}" -X DELETE "$endpoint/berth-ready" >/dev/null
  step ""

  trap - EXIT
  cat >"$D/env" <<EOF
BERTH_RGW_ENDPOINT=$endpoint
BERTH_RGW_ACCESSKEY=$key
BERTH_RGW_SECRETKEY=$secret
EOF
  awk -v a="$t0" -v b="$(now)" -v s="$store" \
    'BEGIN { printf "rgw.sh: started in %.1f s (%s)\n", b - a, s }' >&2
  cat "$D/env"
}

# Creates bucket $1 with a signed request of the user in $D/env.
make_bucket() {
  [ -f "$D/env" ] || die "no gateway started in $D"
  local BERTH_RGW_ENDPOINT BERTH_RGW_ACCESSKEY BERTH_RGW_SECRETKEY
  . "$D/env"
  curl -sS --fail-with-body -X PUT -H "Content-Length: 0" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$BERTH_RGW_ACCESSKEY:$BERTH_RGW_SECRETKEY" \
    "$BERTH_RGW_ENDPOINT/$1" >/dev/null || die "creating bucket $1 failed"
}

cmd="${1:-}"
case "$cmd" in
  install) install ;;
  start)
    D="${2:?rgw.sh start DIR}"
    shift 2
    D="$(realpath -m "$D")"
    start "$@"
    ;;
  stop)
    D="$(realpath -m "${2:?rgw.sh stop DIR}")"
    stop
    ;;
  mb)
    D="$(realpath -m "${2:?rgw.sh mb DIR BUCKET}")"
    make_bucket "${3:?rgw.sh mb DIR BUCKET}"
    ;;
  rb)
    D="$(realpath -m "${2:?rgw.sh rb DIR BUCKET}")"
    radosgw-admin -c "$D/ceph.conf" bucket rm --bucket="${3:?rgw.sh rb DIR BUCKET}" \
      --purge-objects --bypass-gc >/dev/null 2>"$D/log/rb.out" ||
      { cat "$D/log/rb.out" >&2; die "removing bucket $3 failed"; }
    ;;
  *) die "usage: rgw.sh install | start DIR [--store memstore|bluestore] [--owner PID] | stop DIR | mb DIR BUCKET | rb DIR BUCKET" ;;
esac
