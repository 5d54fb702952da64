#!/usr/bin/env python3
"""The catalog from a cold start (docs/benchmarks.md, "Catalog from a cold start").

Writes a registry tree in distribution's layout directly (repositories `cat/rNNNNNN`,
each with a layer link and TAGS tags; the layer's blob itself is not needed to be listed),
then for each registry binary given: drops the page cache (root only), starts it on the
tree, and times readiness (`GET /v2/`), the first `_catalog?n=100`, a deep page
(`last=` the middle repository), and for berth the end of its background build (the
`berth_catalog_listing_built` gauge, polled every 10 ms) and its RSS at readiness and
once built; each page is checked against the names
written. Usage:

  scripts/catalog-cold.py --root /tmp/cat200k --repos 200000 --tags 1 \
      --berth target/release/berth --distribution /usr/bin/docker-registry \
      [--berth-before /path/to/an/older/berth]
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

LAYER = "sha256:" + "ab" * 32
MANIFEST = "sha256:" + "cd" * 32


def name(i):
    return f"cat/r{i:06d}"


def write_tree(root, repos, tags):
    base = os.path.join(root, "docker/registry/v2/repositories")
    marker = os.path.join(root, f".written-{repos}-{tags}")
    if os.path.exists(marker):
        return
    started = time.time()
    for i in range(repos):
        repo = os.path.join(base, name(i))
        layer = os.path.join(repo, "_layers/sha256", LAYER[7:])
        os.makedirs(layer, exist_ok=True)
        with open(os.path.join(layer, "link"), "w") as f:
            f.write(LAYER)
        for t in range(tags):
            current = os.path.join(repo, "_manifests/tags", f"t{t}", "current")
            os.makedirs(current, exist_ok=True)
            with open(os.path.join(current, "link"), "w") as f:
                f.write(MANIFEST)
    open(marker, "w").close()
    print(f"wrote {repos} repositories in {time.time() - started:.0f} s", file=sys.stderr)


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def get(url):
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as r:
        body = r.read()
    return time.perf_counter() - started, body


def page(base, n, last, want):
    query = f"?n={n}" + (f"&last={last}" if last else "")
    took, body = get(base + "/v2/_catalog" + query)
    got = json.loads(body)["repositories"]
    assert got == want, f"{query}: got {got[:3]}..., want {want[:3]}..."
    return took * 1000


def wait_ready(base, proc):
    while True:
        try:
            get(base + "/v2/")
            return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}")
            time.sleep(0.002)


def built(debug):
    _, body = get(f"http://{debug}/metrics")
    return b"\nberth_catalog_listing_built 1\n" in body


def config(root, port, debug, path):
    with open(path, "w") as f:
        f.write(
            f"""version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  debug:
    addr: {debug}
    prometheus:
      enabled: true
"""
        )


def measure(label, binary, root, repos, port, work):
    cfg = os.path.join(work, f"{label}.yml")
    log = os.path.join(work, f"{label}.log")
    debug = f"127.0.0.1:{port + 1}"
    config(root, port, debug, cfg)
    base = f"http://127.0.0.1:{port}"
    mid = repos // 2
    first_want = [name(i) for i in range(100)]
    deep_want = [name(i) for i in range(mid + 1, min(mid + 101, repos))]
    drop_caches()
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([binary, "serve", cfg], stdout=out, stderr=out)
    try:
        wait_ready(base, proc)
        ready = (time.perf_counter() - started) * 1000
        rss_ready = rss_kib(proc.pid)
        first = page(base, 100, None, first_want)
        deep = page(base, 100, name(mid), deep_want)
        row = {
            "label": label,
            "repos": repos,
            "ready_ms": round(ready, 1),
            "first_ms": round(first, 1),
            "deep_ms": round(deep, 1),
        }
        if label == "berth":
            while not built(debug):
                if proc.poll() is not None:
                    raise SystemExit("berth exited during the build")
                time.sleep(0.01)
            row["built_s"] = round(time.perf_counter() - started, 2)
            row["rss_ready_mib"] = round(rss_ready / 1024, 1)
            row["rss_built_mib"] = round(rss_kib(proc.pid) / 1024, 1)
            row["rss_peak_mib"] = round(rss_kib(proc.pid, "VmHWM") / 1024, 1)
        # Warm pages: the first and the deep one again, median of 5.
        warm = sorted(page(base, 100, name(mid), deep_want) for _ in range(5))
        row["deep_warm_ms"] = round(warm[2], 2)
        return row
    finally:
        proc.terminate()
        proc.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True)
    p.add_argument("--repos", type=int, required=True)
    p.add_argument("--tags", type=int, default=5)
    p.add_argument("--berth")
    p.add_argument("--distribution")
    p.add_argument("--berth-before", help="a berth built before this change, for comparison")
    p.add_argument("--port", type=int, default=5731)
    args = p.parse_args()
    write_tree(args.root, args.repos, args.tags)
    work = os.path.join(args.root, "run")
    os.makedirs(work, exist_ok=True)
    binaries = (
        ("berth", args.berth),
        ("berth-before", args.berth_before),
        ("distribution", args.distribution),
    )
    for label, binary in binaries:
        if binary:
            print(json.dumps(measure(label, binary, args.root, args.repos, args.port, work)))


if __name__ == "__main__":
    main()
