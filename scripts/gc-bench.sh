#!/usr/bin/env bash
# Measures offline garbage collection (issue #11): `berth garbage-collect` against CNCF
# distribution's `docker-registry garbage-collect` (Debian's, 2.8.2) on the same root.
#
# Populating: a berth (fsync off: only the layout matters) is started on a fresh root and
# fed through the HTTP API by `curl --parallel`: N image manifests (Docker schema 2, each
# 1 config + 4 layers of a few hundred random bytes, all distinct: 5N blobs, 50,000 for
# the default N) over 100 repositories, plus N/10 orphan blobs no manifest references.
# 70% of the manifests are tagged, 10% are pushed by digest only (untagged), and 20% are
# pushed tagged and then deleted (DELETE by digest), so the sweep has real work.
# `berth check-storage` must accept the populated root.
#
# Measuring: each run gets its own `cp -a` copy of that root; "cold" runs sync and drop
# the page cache first (only when root), "warm" runs keep the cache the copy filled. Each
# tool runs under `/usr/bin/time -v` (wall time, maximum resident set size) in three
# modes: `gc` (sweep), `gc -m` (--delete-untagged) and `dry-run`. After each sweep,
# `berth check-storage` must accept the result, and both tools must keep the same blobs.
# Results: $OUT/runs.tsv (one line per run) and $OUT/report.md (medians, printed).
#
# usage: scripts/gc-bench.sh [--manifests N] [--rounds R] [--out DIR]
#   --manifests N  image manifests (default 10000; 5 blobs each)
#   --rounds R     repetitions of each tool/mode/cache combination (default 2)
#   --out DIR      where results go (default target/gc-bench/<date>)
set -euo pipefail
cd "$(dirname "$0")/.."

manifests=10000
rounds=2
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --manifests) manifests="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "gc-bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
out="${out:-target/gc-bench/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

. scripts/lib/packages.sh
install_missing docker-registry:docker-registry /usr/bin/time:time python3:python3 curl:curl

cargo build --release -p berth-server -p berth-bench
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain -- crates 2>/dev/null)" ]; then
  commit="$commit + uncommitted changes"
fi
target_dir="${CARGO_TARGET_DIR:-target}"
berth="$(cd "$target_dir/release" && pwd)/berth"
bench="$(cd "$target_dir/release" && pwd)/berth-bench"
distribution="$(command -v docker-registry)"

work="$(mktemp -d "${TMPDIR:-/tmp}/berth-gc-bench.XXXXXX")"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# write_config ROOT PORT: a config both tools read (the root's data is ROOT/data).
write_config() {
  cat >"$1/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $1/data
    fsync: false
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$2
EOF
}

# generate DIR URL: blob files, manifests and curl configs (blobs.cfg, manifests.cfg,
# deletes.cfg) for the population described above.
generate() {
  python3 - "$1" "$2" "$manifests" <<'PY'
import hashlib, json, os, random, sys
out, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(11)
os.makedirs(f"{out}/files", exist_ok=True)
cfgs = {k: open(f"{out}/{k}.cfg", "w") for k in ("blobs", "manifests", "deletes")}

def put_file(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    path = f"{out}/files/{d[7:]}"
    with open(path, "wb") as f:
        f.write(data)
    return d, path

def request(cfg, method, target, path=None, ctype="application/octet-stream"):
    if cfg.tell():
        cfg.write("next\n")
    cfg.write(f'url = "{url}{target}"\nrequest = "{method}"\noutput = "/dev/null"\nwrite-out = "%{{http_code}}\\n"\n')
    if path:
        cfg.write(f'data-binary = "@{path}"\nheader = "Content-Type: {ctype}"\n')

def blob(repo, data):
    d, path = put_file(data)
    request(cfgs["blobs"], "POST", f"/v2/{repo}/blobs/uploads/?digest={d}", path)
    return {"digest": d, "size": len(data)}

def noise():
    return rng.randbytes(rng.randint(200, 600))

for i in range(n):
    repo = f"gc/r{i % 100:03d}"
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": i,
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    m = {"schemaVersion": 2,
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "config": dict(blob(repo, config), mediaType="application/vnd.docker.container.image.v1+json"),
         "layers": [dict(blob(repo, noise()), mediaType="application/vnd.docker.image.rootfs.diff.tar.gzip")
                    for _ in range(4)]}
    d, path = put_file(json.dumps(m, indent=3).encode())
    kind = (i // 100) % 10  # 0-6 tagged, 7 untagged, 8-9 deleted (every repository has all)
    ref = d if kind == 7 else f"t{i}"
    request(cfgs["manifests"], "PUT", f"/v2/{repo}/manifests/{ref}", path, m["mediaType"])
    if kind >= 8:
        request(cfgs["deletes"], "DELETE", f"/v2/{repo}/manifests/{d}")
for i in range(n // 10):
    blob(f"gc/r{i % 100:03d}", noise())
PY
}

# send CFG: runs the requests of a curl config concurrently; fails unless all are 2xx.
send() {
  local codes
  codes="$(curl --silent --no-progress-meter --parallel --parallel-max 16 -K "$1" | sort | uniq -c)"
  echo "gc-bench.sh: $(basename "$1"): $(echo "$codes" | tr -s ' \n' ' ')" >&2
  if echo "$codes" | awk '$2 !~ /^2/ {bad=1} END {exit !bad}'; then
    echo "gc-bench.sh: requests of $1 failed" >&2
    exit 1
  fi
}

# populate ROOT: the pristine root (ROOT/data, ROOT/config.yml).
populate() {
  local root="$1" port
  port="$("$bench" free-port)"
  mkdir -p "$root"
  write_config "$root" "$port"
  "$berth" serve "$root/config.yml" >"$out/populate.log" 2>&1 &
  server_pid=$!
  "$bench" wait --url "http://127.0.0.1:$port" --timeout 30
  generate "$work/gen" "http://127.0.0.1:$port"
  local part
  for part in blobs manifests deletes; do send "$work/gen/$part.cfg"; done
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  rm -rf "$work/gen"
  "$berth" check-storage "$root/config.yml" >"$out/check-pristine.log" 2>&1 || {
    echo "gc-bench.sh: berth check-storage rejects the populated root" >&2
    cat "$out/check-pristine.log" >&2
    exit 1
  }
}

blob_count() { find "$1/data/docker/registry/v2/blobs" -name data -type f | wc -l; }

# measure TOOL MODE CACHE ROUND: one run on a fresh copy; appends a line to runs.tsv.
measure() {
  local tool="$1" mode="$2" cache="$3" round="$4" copy args exe
  copy="$work/$tool-$mode-$cache-$round"
  cp -a "$work/pristine" "$copy"
  sed -i "s|$work/pristine/data|$copy/data|" "$copy/config.yml"
  sync
  if [ "$cache" = cold ] && [ -w /proc/sys/vm/drop_caches ]; then echo 1 >/proc/sys/vm/drop_caches; fi
  case "$mode" in
    gc) args=() ;;
    gc-m) args=(--delete-untagged) ;;
    dry-run) args=(--dry-run) ;;
  esac
  exe="$berth"
  [ "$tool" = distribution ] && exe="$distribution"
  local log="$out/$tool-$mode-$cache-$round"
  if ! /usr/bin/time -v -o "$log.time" "$exe" garbage-collect "${args[@]}" "$copy/config.yml" \
    >"$log.out" 2>"$log.err"; then
    echo "$tool $mode $cache round $round: garbage-collect failed: $(tail -1 "$log.err")" | tee -a "$out/odd.txt" >&2
  fi
  local wall rss eligible kept
  wall="$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$log.time")"
  rss="$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$log.time")"
  eligible="$(grep -Eo '[0-9]+ blobs and [0-9]+ manifests eligible' "$log.out" | awk '{print $1}')"
  kept="$(blob_count "$copy")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$mode" "$cache" "$round" "$wall" "$rss" \
    "${eligible:-?}" "$kept" "$(verify "$copy" "$tool-$mode")" >>"$out/runs.tsv"
  if [ "$mode" = dry-run ]; then rm -rf "$copy"; fi
}

# verify COPY NAME: lists the kept blobs; prints what berth check-storage finds in the
# result ("clean", or the number of findings of each kind).
verify() {
  if "$berth" check-storage "$1/config.yml" >"$out/check-$2.log" 2>&1; then
    echo clean
  else
    awk '/^[a-z-]+ \// {n[$1]++} END {for (k in n) printf "%d %s ", n[k], k}' "$out/check-$2.log"
  fi
  find "$1/data/docker/registry/v2/blobs" -name data -type f | sed 's|.*/\([0-9a-f]*\)/data$|\1|' |
    sort >"$out/kept-$2.txt"
}

# compare_kept MODE: both tools keep the same blobs.
compare_kept() {
  if ! cmp -s "$out/kept-berth-$1.txt" "$out/kept-distribution-$1.txt"; then
    echo "$1: blobs kept differ: $(diff "$out/kept-berth-$1.txt" "$out/kept-distribution-$1.txt" | grep -c '^[<>]') lines" |
      tee -a "$out/odd.txt" >&2
  fi
}

# report: medians over the rounds, as a Markdown table.
report() {
  echo "| tool | mode | cache | wall s (median) | peak RSS MiB (median) | blobs swept | blobs kept | berth check-storage after |"
  echo "|---|---|---|---:|---:|---:|---:|---|"
  sort -t$'\t' -k1,1 -k2,2 -k3,3 "$out/runs.tsv" | awk -F'\t' '
    function median(s,   a, n, i, j, t) {
      n = split(s, a, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
      return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    { k = $1 "|" $2 "|" $3; if (!(k in w)) order[++n] = k; w[k] = w[k] " " $5; r[k] = r[k] " " $6; e[k] = $7; kept[k] = $8; chk[k] = $9 }
    END { for (i = 1; i <= n; i++) { k = order[i]; split(k, f, "|")
      printf "| %s | %s | %s | %.2f | %.1f | %s | %s | %s |\n", f[1], f[2], f[3], median(w[k]), median(r[k]), e[k], kept[k], chk[k] } }'
}

populate "$work/pristine"
echo "gc-bench.sh: populated: $(blob_count "$work/pristine") blobs, $(du -sh "$work/pristine/data" | cut -f1)" >&2
: >"$out/runs.tsv"
for round in $(seq 1 "$rounds"); do
  for mode in gc gc-m dry-run; do
    for cache in cold warm; do
      for tool in berth distribution; do
        [ $((round % 2)) = 0 ] && tool="$([ "$tool" = berth ] && echo distribution || echo berth)"
        echo "gc-bench.sh: round $round: $tool $mode $cache" >&2
        measure "$tool" "$mode" "$cache" "$round"
      done
    done
    [ "$mode" = dry-run ] || compare_kept "$mode"
  done
  rm -rf "$work"/berth-* "$work"/distribution-*
done
{
  report
  echo
  echo "Command: \`scripts/gc-bench.sh --manifests $manifests --rounds $rounds\`; commit $commit;" \
    "root: $(blob_count "$work/pristine") blobs before the sweep; $rounds rounds."
  [ -s "$out/odd.txt" ] && { echo; echo "Odd:"; sed 's/^/- /' "$out/odd.txt"; }
  true
} | tee "$out/report.md"
