#!/usr/bin/env bash
# Fuzzes the parsers that take outside bytes (fuzz/fuzz_targets/): request
# bodies, the LearnWorlds webhook (signature and payload) and the session
# launch. Each target runs for FUZZ_SECONDS (default 60), starting from its
# seeds in fuzz/seeds/<target> plus what earlier runs found (fuzz/corpus/, not
# committed). Prints each target's executions and crashes; exits 1 on a crash,
# whose input libFuzzer saves in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh                          # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh webhook # one target, longer
#
# cargo fuzz needs nightly-only flags; on a stable toolchain RUSTC_BOOTSTRAP=1
# allows them. The build is a separate AddressSanitizer build of the whole
# dependency tree, kept in FUZZ_TARGET_DIR (default fuzz/target).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-60}"
target_dir="${FUZZ_TARGET_DIR:-$PWD/target}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(request_body webhook session_launch)
fi
export RUSTC_BOOTSTRAP=1

log() { printf '==> %s\n' "$*" >&2; }

if ! command -v cargo-fuzz >/dev/null; then
    log "installing cargo-fuzz 0.13.2 from crates.io"
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

log "cargo fuzz build (AddressSanitizer, release with debug assertions) in $target_dir"
cargo fuzz build --target-dir "$target_dir" >&2

failed=0
summary=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    before=$(find "artifacts/$target" -type f | wc -l)
    out="$(mktemp)"
    log "fuzzing $target for ${seconds} s"
    set +e
    cargo fuzz run --target-dir "$target_dir" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        >"$out" 2>&1
    status=$?
    set -e
    # A run that never started (a build error, say) prints neither.
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
    if [ -z "$execs" ]; then
        execs=$(grep -oE '^#[0-9]+' "$out" | tail -1 | tr -d '#' || true)
    fi
    crashes=$(( $(find "artifacts/$target" -type f | wc -l) - before ))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1
        tail -20 "$out" >&2
    fi
    corpus=$(find "corpus/$target" -type f | wc -l)
    line=$(printf '%-16s %8s s  %12s executions  %3s crashes  %6s corpus inputs' \
        "$target" "$seconds" "${execs:-?}" "$crashes" "$corpus")
    summary+=("$line")
    if [ "$crashes" -ne 0 ]; then
        failed=1
        grep -E -A4 'panicked at|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)' "$out" | head -20 >&2 || true
        grep -E -A2 '^Failing input' "$out" >&2 || true
        log "$target crashed; inputs in fuzz/artifacts/$target/"
    fi
    rm -f "$out"
done

printf '\nfuzzing, %s s per target:\n' "$seconds"
printf '  %s\n' "${summary[@]}"
exit "$failed"
