#!/usr/bin/env bash
# Runs every cargo-fuzz target under fuzz/ for SECONDS each (default 600), one after
# another with a single job, and prints the executions of each. New inputs the fuzzer
# finds go to fuzz/corpus/<target> (git-ignored); the committed seeds in
# fuzz/seeds/<target> are read too. Crashes land in fuzz/artifacts/<target>/ and make
# the script exit non-zero once every target has run.
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail

seconds="${1:-600}"
shift || true
cd "$(dirname "$0")/../fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 1
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build

declare -A runs status
failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    log="$(mktemp)"
    echo "== $t: ${seconds}s"
    if cargo +nightly fuzz run --jobs 1 "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        status[$t]=ok
    else
        status[$t]="CRASH (see fuzz/artifacts/$t and the log below)"
        tail -n 40 "$log"
        failed=1
    fi
    runs[$t]="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rm -f "$log"
done

echo
printf '%-12s %15s  %s\n' target executions result
for t in "${targets[@]}"; do
    printf '%-12s %15s  %s\n' "$t" "${runs[$t]:-?}" "${status[$t]}"
done
exit "$failed"
