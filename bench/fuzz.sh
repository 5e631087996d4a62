#!/usr/bin/env bash
# Fuzz the adapter's parsers with atheris (bench/fuzz/), one target after the other.
#
#   bench/fuzz.sh SECONDS [TARGET...]   each target for SECONDS seconds
#   bench/fuzz.sh --runs N [TARGET...]  each target for N iterations
#
# Targets: envelope mime cpa stuf pdf (default: all, in that order). Every run is bounded by
# -rss_limit_mb (FUZZ_RSS_MB, default 1024: memory that grows without bound is a finding) and
# -timeout (FUZZ_TIMEOUT seconds per input, default 10). The seeds in bench/fuzz/corpus/ are
# only read; what libFuzzer finds new, its log and any crash-/oom-/timeout- input go to
# FUZZ_OUT/<target>/ (default var/fuzz; a run first removes the findings of the one before).
# Prints one line per target and exits non-zero when
# any target found something. atheris is installed from the `fuzz` extra when missing.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${FUZZ_OUT:-var/fuzz}
RSS_MB=${FUZZ_RSS_MB:-1024}
TIMEOUT=${FUZZ_TIMEOUT:-10}
ALL_TARGETS=(envelope mime cpa stuf pdf)

usage() {
    echo "usage: $0 SECONDS [TARGET...] | $0 --runs N [TARGET...]  (targets: ${ALL_TARGETS[*]})" >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
if [[ $1 == --runs ]]; then
    [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage
    budget=(-runs="$2")
    shift 2
else
    [[ $1 =~ ^[0-9]+$ ]] || usage
    budget=(-max_total_time="$1")
    shift
fi
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${ALL_TARGETS[@]}")
for target in "${targets[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $target "* ]] || usage
done

"$PYTHON" -c "import atheris" 2>/dev/null || "$PYTHON" -m pip install --quiet -e '.[fuzz]'

declare -A dictionary=([envelope]=xml [cpa]=xml [stuf]=xml [mime]=mime [pdf]=pdf)
failed=0
printf '%-9s %10s %8s %8s %6s  %s\n' target iterations exec/s peak_MB corpus findings
for target in "${targets[@]}"; do
    work="$OUT/$target"
    mkdir -p "$work/corpus"
    rm -f "$work"/crash-* "$work"/oom-* "$work"/timeout-* "$work"/leak-* "$work"/slow-unit-*
    max_len=$("$PYTHON" -c "from bench.fuzz import MAX_LEN; print(MAX_LEN['$target'])")
    status=0
    "$PYTHON" -m bench.fuzz "$target" \
        "${budget[@]}" \
        -rss_limit_mb="$RSS_MB" \
        -timeout="$TIMEOUT" \
        -max_len="$max_len" \
        -dict="bench/fuzz/dict/${dictionary[$target]}.dict" \
        -print_final_stats=1 \
        -artifact_prefix="$work/" \
        "$work/corpus" "bench/fuzz/corpus/$target" \
        >"$work/fuzz.log" 2>&1 || status=$?
    stat() { sed -n "s/^stat::$1: *//p" "$work/fuzz.log" | tail -1; }
    findings=$(find "$work" -maxdepth 1 -type f \
        \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    corpus=$(find "$work/corpus" -type f | wc -l)
    verdict="none"
    if [[ $status -ne 0 || $findings -ne 0 ]]; then
        verdict="$findings (exit $status; see $work/fuzz.log)"
        failed=1
    fi
    printf '%-9s %10s %8s %8s %6s  %s\n' "$target" "$(stat number_of_executed_units)" \
        "$(stat average_exec_per_sec)" "$(stat peak_rss_mb)" "$corpus" "$verdict"
done
exit $failed
