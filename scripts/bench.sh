#!/usr/bin/env bash
# Benchmarks berth against CNCF distribution (Debian's docker-registry, 2.8.2) on this
# machine: each round starts a fresh registry of each kind (new root directory, free
# loopback port, the same config.yml), runs `berth-bench run` against it with its pid
# for memory sampling, and stops it. Rounds alternate which registry goes first.
# All result lines go to $OUT/results.jsonl; the Markdown table of medians is printed
# at the end (and saved as $OUT/report.md).
#
# Both registries flush every acknowledged write to the disk (distribution always does;
# berth by default). --nofsync adds a third registry, berth with
# `storage.filesystem.fsync: false`, and a second table comparing it with distribution.
#
# --auth basic|token measures access control: berth and distribution both get the same
# `auth` section (htpasswd made by `htpasswd -B`, or auth.token trusting a certificate made
# here, with a token signed by `berth-bench token`), a third registry, berth without auth
# (label berth-noauth), runs too, and only push-large, pull-large and pull-small run. The
# report then also compares berth with berth-noauth.
#
# --ops measures operations features: berth and distribution both get the same
# `notifications` endpoint (a live receiver, `berth-bench receive`, started here) and
# Prometheus metrics on a debug address; a third registry, berth with neither (label
# berth-noops), runs too, and only pull-small and push-small run. The report then also
# compares berth with berth-noops, and the events each registry delivered are printed.
#
# --proxy measures the pull-through cache: one upstream berth is started for the whole
# run (fresh root), berth-bench fills it with the pull-proxy data (pull-large's blob and
# a second one), and each round runs pull-proxy three ways: straight from the upstream
# (label direct), through a fresh berth in proxy mode, and through a fresh distribution
# in proxy mode (both with the same `proxy.remoteurl` section). The report compares
# berth with distribution, then each cache with the direct pull (the targets: cold
# at least 90% of direct, warm matching it).
#
# usage: scripts/bench.sh [--rounds N] [--size smoke|full] [--out DIR] [--no-scale] [--nofsync]
#                         [--auth basic|token] [--ops] [--proxy]
#   --rounds N   rounds (default 3)
#   --size S     smoke (seconds) or full (default)
#   --out DIR    where results go (default target/bench/<date>)
#   --no-scale   skip catalog-scale (populating 20,000 repositories)
#   --nofsync    also run berth without flushing to the disk (label berth-nofsync)
#   --auth MODE  basic or token (see above)
#   --ops        notifications and metrics on (see above)
#   --proxy      pull-through cache mode (see above)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
size=full
out=""
scenario=all
labels=(berth distribution)
auth=""
ops=""
proxy=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-scale) scenario=""; shift ;;
    --nofsync) labels+=(berth-nofsync); shift ;;
    --auth) auth="$2"; shift 2 ;;
    --ops) ops=1; shift ;;
    --proxy) proxy=1; shift ;;
    -h|--help) sed -n '2,43p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
out="${out:-target/bench/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

. scripts/lib/packages.sh
# htpasswd and openssl make the credentials of --auth.
install_missing docker-registry:docker-registry htpasswd:apache2-utils openssl:openssl curl:curl

cargo build --release -p berth-server -p berth-bench
# What was built (the source may change while the rounds run).
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain -- crates ':!crates/bench' 2>/dev/null)" ]; then
  commit="$commit + uncommitted changes"
fi
target_dir="${CARGO_TARGET_DIR:-target}"
berth="$target_dir/release/berth"
bench="$target_dir/release/berth-bench"
distribution="$(command -v docker-registry)"

# Auth mode: the credentials and the config section both registries get.
auth_yaml=""
authorization=""
case "$auth" in
  "") ;;
  basic)
    # htpasswd -B's default cost (5), as an operator's `htpasswd -B` writes it.
    htpasswd -Bbc "$out/htpasswd" bench bench-password 2>/dev/null
    auth_yaml="auth:
  htpasswd:
    realm: bench
    path: $out/htpasswd"
    authorization="Basic $(printf 'bench:bench-password' | base64)"
    ;;
  token)
    openssl req -x509 -nodes -days 2 -newkey rsa:2048 -subj /CN=bench-token \
      -keyout "$out/token.key" -out "$out/token.crt" 2>/dev/null
    auth_yaml="auth:
  token:
    realm: https://auth.invalid/token
    service: bench-registry
    issuer: bench-issuer
    rootcertbundle: $out/token.crt"
    authorization="Bearer $("$bench" token --key "$out/token.key" --cert "$out/token.crt" \
      --issuer bench-issuer --service bench-registry --expires 86400)"
    ;;
  *) echo "bench.sh: --auth takes basic or token" >&2; exit 2 ;;
esac
if [ -n "$auth" ]; then
  labels+=(berth-noauth)
  scenario="push-large,pull-large,pull-small"
fi

if [ -n "$ops" ]; then
  labels+=(berth-noops)
  scenario="pull-small,push-small"
fi

if [ -n "$proxy" ]; then
  labels=(direct berth distribution)
  scenario="pull-proxy"
fi

results="$out/results.jsonl"
: >"$results"
server_pid=""
receiver_pid=""
upstream_pid=""
upstream_url=""
roots=()

# Roots are deleted only when the script ends. This VM's ext4 has no journal, and such
# an ext4, when it allocates an inode, passes over every free inode deleted in the last
# 60 s (360 s while its inode-table block is dirty, which the allocation itself makes it)
# and does so again for the next allocation: a run started within minutes of deleting a
# previous root (tens of thousands of files) spent most of its push-small time there
# (perf: find_get_block_common, recently_deleted).
remove_roots() {
  stop_server
  if [ -n "$receiver_pid" ]; then kill "$receiver_pid" 2>/dev/null || true; fi
  if [ -n "$upstream_pid" ]; then
    kill "$upstream_pid" 2>/dev/null || true
    wait "$upstream_pid" 2>/dev/null || true
  fi
  if [ ${#roots[@]} -gt 0 ]; then rm -rf "${roots[@]}"; fi
}

stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    # Start every registry on an equal footing: nothing left to write back and no page
    # cache full of the previous run's gigabytes (dropped when this runs as root).
    sync
    if [ -w /proc/sys/vm/drop_caches ]; then
      echo 1 >/proc/sys/vm/drop_caches || true
    fi
  fi
}
trap remove_roots EXIT

# Ops mode: one live notification endpoint for every round, and the notifications
# section both registries get.
ops_yaml=""
if [ -n "$ops" ]; then
  receiver_port="$("$bench" free-port)"
  "$bench" receive --port "$receiver_port" >"$out/receiver.log" 2>&1 &
  receiver_pid=$!
  ops_yaml="notifications:
  endpoints:
    - name: bench
      url: http://127.0.0.1:$receiver_port/events
      timeout: 2s
      threshold: 5
      backoff: 1s"
fi

# Envelopes and events the receiver has counted so far ("posts events").
received() {
  curl -fsS "http://127.0.0.1:$receiver_port/count" 2>/dev/null |
    sed -E 's/.*"posts":([0-9]+),"events":([0-9]+).*/\1 \2/'
}

# Proxy mode: the upstream every cache pulls from, for the whole run.
if [ -n "$proxy" ]; then
  up_root="$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-upstream.XXXXXX")"
  roots+=("$up_root")
  up_port="$("$bench" free-port)"
  cat >"$up_root/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $up_root/data
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$up_port
EOF
  "$berth" serve "$up_root/config.yml" >"$out/upstream.server.log" 2>&1 &
  upstream_pid=$!
  upstream_url="http://127.0.0.1:$up_port"
  "$bench" wait --url "$upstream_url" --timeout 30
  echo "bench.sh: upstream berth (pid $upstream_pid, port $up_port)" >&2
fi

# run_one LABEL ROUND: fresh registry, one benchmark run, stop.
run_one() {
  local label="$1" round="$2"
  if [ "$label" = direct ]; then
    # The upstream itself: pull-proxy fills it on its first run.
    echo "bench.sh: round $round: direct (upstream pid $upstream_pid)" >&2
    "$bench" run --url "$upstream_url" --size "$size" --pid "$upstream_pid" --label direct \
      --scenario "$scenario" | tee -a "$results" >/dev/null
    return
  fi
  local root port cfg log
  root="$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-$label.XXXXXX")"
  roots+=("$root")
  port="$("$bench" free-port)"
  cfg="$root/config.yml"
  log="$out/$label-round$round.server.log"
  local fsync=true
  [ "$label" = berth-nofsync ] && fsync=false
  local with_ops=""
  if [ -n "$ops" ] && [ "$label" != berth-noops ]; then
    with_ops=1
  fi
  cat >"$cfg" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $root/data
    fsync: $fsync
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
EOF
  if [ -n "$with_ops" ]; then
    # Right below `http.addr`: the debug server belongs to the `http` section. berth's
    # queue lives beside this round's root (distribution ignores the `berth` block).
    cat >>"$cfg" <<EOF
  debug:
    addr: 127.0.0.1:$("$bench" free-port)
    prometheus:
      enabled: true
$ops_yaml
berth:
  notifications:
    queue:
      directory: $root/queue
EOF
  fi
  if [ -n "$auth" ] && [ "$label" != berth-noauth ]; then
    echo "$auth_yaml" >>"$cfg"
  fi
  if [ -n "$proxy" ]; then
    printf 'proxy:\n  remoteurl: %s\n' "$upstream_url" >>"$cfg"
  fi
  local before=""
  [ -n "$with_ops" ] && before="$(received)"
  case "$label" in
    berth|berth-nofsync|berth-noauth|berth-noops) "$berth" serve "$cfg" >"$log" 2>&1 & ;;
    distribution) "$distribution" serve "$cfg" >"$log" 2>&1 & ;;
  esac
  server_pid=$!
  "$bench" wait --url "http://127.0.0.1:$port" --timeout 30
  echo "bench.sh: round $round: $label (pid $server_pid, port $port)" >&2
  local args=(run --url "http://127.0.0.1:$port" --size "$size" --pid "$server_pid" --label "$label")
  [ -n "$scenario" ] && args+=(--scenario "$scenario")
  if [ -n "$auth" ] && [ "$label" != berth-noauth ]; then
    args+=(--authorization "$authorization")
  fi
  if [ -n "$proxy" ]; then
    args+=(--upstream "$upstream_url")
  fi
  "$bench" "${args[@]}" | tee -a "$results" >/dev/null
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "bench.sh: $label exited during the run; see $log" >&2
  fi
  if [ -n "$with_ops" ]; then
    # Delivery may trail the run: wait until the count stops moving (at most 30 s).
    local after prev=""
    for _ in $(seq 1 30); do
      after="$(received)"
      [ "$after" = "$prev" ] && break
      prev="$after"
      sleep 1
    done
    local p0 e0 p1 e1
    read -r p0 e0 <<<"$before"
    read -r p1 e1 <<<"$after"
    echo "$label round $round: $((e1 - e0)) events in $((p1 - p0)) POSTs" >>"$out/events.txt"
  fi
  stop_server
}

# Other work on the machine (a compiler, say) skews the numbers: show the load.
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started=$(date +%s)
for round in $(seq 1 "$rounds"); do
  # Each round starts with the next registry in turn.
  n=${#labels[@]}
  for i in $(seq 0 $((n - 1))); do
    run_one "${labels[$(((round - 1 + i) % n))]}" "$round"
  done
done
elapsed=$(($(date +%s) - started))
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

{
  echo "berth $commit, $(date -u +%Y-%m-%d), size $size, $rounds round(s), ${elapsed}s"
  echo "($(nproc) cores; load average before: $load_before, after: $load_after)"
  echo
  "$bench" report "$results"
  if [[ " ${labels[*]} " == *" berth-nofsync "* ]]; then
    echo
    echo "berth with storage.filesystem.fsync: false (acknowledged writes may be lost in a"
    echo "machine crash) against distribution, which flushes every file:"
    echo
    "$bench" report --candidate berth-nofsync "$results"
  fi
  if [ -n "$auth" ]; then
    echo
    echo "berth with $auth auth against berth without auth (same machine, same rounds):"
    echo
    "$bench" report --candidate berth --baseline berth-noauth "$results"
  fi
  if [ -n "$proxy" ]; then
    for cache in berth distribution; do
      echo
      echo "$cache in proxy mode against a direct pull from the same upstream (berth):"
      echo
      "$bench" report --candidate "$cache" --baseline direct "$results"
    done
  fi
  if [ -n "$ops" ]; then
    echo
    echo "berth with notifications and metrics against berth with neither:"
    echo
    "$bench" report --candidate berth --baseline berth-noops "$results"
    echo
    echo "Events delivered to the receiver (counted once each run's queue drained):"
    echo
    sed 's/^/    /' "$out/events.txt"
  fi
} | tee "$out/report.md"
echo "bench.sh: results in $results" >&2
