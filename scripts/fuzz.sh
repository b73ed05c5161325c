#!/bin/bash
# fuzz.sh — run the libFuzzer targets one after another and report on each (make fuzz).
#   scripts/fuzz.sh BUILD SECONDS TARGET...     e.g. scripts/fuzz.sh build-fuzz 600 png jpeg
#
# Each target BUILD/bin/fuzz_TARGET runs for SECONDS under `nice -n 15` in libFuzzer's fork mode
# with one child at a time: an input that crashes (sanitizer report, broken promise of the
# target, timeout of 30 s, more than 2 GB) is kept in BUILD/crashes/TARGET/ and fuzzing goes on,
# so one run collects them all. Inputs come from the working corpus BUILD/corpus/TARGET (kept
# between runs: a later run starts where the last one stopped) and the seeds:
# tests/fuzz/corpus/TARGET, what BUILD/bin/fuzz_seeds writes into BUILD/seeds/TARGET, and
# configs/ for the config target. After the run every kept input is run again alone and
# classified (BUILD/crashes/TARGET/triage.txt). Printed per target: executions, exec/s, libFuzzer's
# cov and ft, corpus size, and the crashes. The exit status is 1 if any target crashed, except
# for defects of Debian's libhdf5 that bokehlab cannot fix, reported on their own line
# (tests/fuzz/libhdf5/README.md): reads past libhdf5's own buffers under the libhdf5 functions
# of tests/fuzz/libhdf5/known.txt, and memory exhausted by libhdf5's own allocations.
# Logs: BUILD/logs/TARGET.log.
#
# Memory: an allocation above 2 GB returns NULL, as on a machine without that much memory,
# rather than stopping the run: a damaged HDF5 file makes libhdf5 ask for a buffer of the size
# its header claims, which it then refuses cleanly (bokehlab's own reads check sizes first).
set -u
build=$1; seconds=$2; shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1

export OMP_NUM_THREADS=1
export ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=2048:detect_leaks=1
export LSAN_OPTIONS=suppressions=$root/tests/fuzz/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

mkdir -p "$build/crashes" "$build/logs"
rm -rf "$build/seeds"
if ! "$build/bin/fuzz_seeds" "$build/seeds" > "$build/logs/fuzz_seeds.log" 2>&1; then
    echo "fuzz: fuzz_seeds failed:"; cat "$build/logs/fuzz_seeds.log"; exit 1
fi

# Where a report points: "libhdf5 known (FUNCTION)" for a read past a buffer under a libhdf5
# function listed in tests/fuzz/libhdf5/known.txt, "libhdf5 out of memory" when the memory was
# taken by libhdf5's own allocations, else "" (README.md there: defects bokehlab cannot fix).
classify() {
    local report=$1
    if grep -q 'libFuzzer: out-of-memory' <<< "$report"; then
        # the largest live allocations: the first frame past malloc in libhdf5
        grep -A3 -m1 -E '^[0-9]+ byte\(s\) \([0-9]+%\) in' <<< "$report" | grep -E '^ +#1 ' | grep -q libhdf5 &&
            echo "libhdf5 out of memory"
        return 0
    fi
    grep -qE 'READ of size|caused by a READ' <<< "$report" || return 0
    local frames
    frames=$(grep -E '^ +#[0-9]+ ' <<< "$report" | grep -vE 'interceptor|in (memcpy|memmove|memset|strdup|strlen) |libc\.so|sysdeps/' |
             awk '/libhdf5/ {print; next} {exit}')
    [ -n "$frames" ] || return 0
    while read -r fn; do
        [ -n "$fn" ] && [ "${fn:0:1}" != "#" ] && grep -q " in $fn " <<< "$frames" && { echo "libhdf5 known ($fn)"; return 0; }
    done < tests/fuzz/libhdf5/known.txt
}

status=0
summary=()
for t in "$@"; do
    bin=$build/bin/fuzz_$t
    corpus=$build/corpus/$t
    crashes=$build/crashes/$t
    rm -rf "$crashes"
    mkdir -p "$corpus" "$crashes"
    seeds=(tests/fuzz/corpus/$t "$build/seeds/$t")
    [ "$t" = config ] && seeds+=(configs)
    dict=()
    [ -f tests/fuzz/$t.dict ] && dict=(-dict=tests/fuzz/$t.dict)
    log=$build/logs/$t.log
    echo "fuzz: $t for ${seconds} s (log: $log)"
    # fork mode with one child: a crash is kept and the run goes on, so one run finds them all
    nice -n 15 "$bin" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -malloc_limit_mb=4096 \
        -artifact_prefix="$crashes/" "${dict[@]}" "$corpus" "${seeds[@]}" > "$log" 2>&1
    rc=$?
    last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -n 1)
    runs=$(sed -n 's/^#\([0-9]*\):.*/\1/p' <<< "$last")
    secs=$(sed -n 's/.* time: \([0-9]*\)s.*/\1/p' <<< "$last")
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<< "$last")
    rate=$([ -n "$runs" ] && [ "${secs:-0}" -gt 0 ] && echo $((runs / secs)))
    # every kept input again, alone: what it is and where
    found=0; known=0
    for a in "$crashes"/crash-* "$crashes"/leak-* "$crashes"/oom-* "$crashes"/timeout-*; do
        [ -e "$a" ] || continue
        report=$(nice -n 15 "$bin" -rss_limit_mb=2048 -malloc_limit_mb=4096 -timeout=30 "$a" 2>&1)
        what=$(grep -m1 -E '^SUMMARY:|broken promise' <<< "$report")
        where=$(classify "$report")
        if [ -z "$what" ]; then
            what="did not fail when run alone"
        fi
        if [ -n "$where" ]; then
            known=$((known + 1))
        else
            found=$((found + 1))
        fi
        echo "  $(basename "$a"): ${where:-bokehlab or unknown}: $what" | cut -c1-240 >> "$crashes/triage.txt"
    done
    # (in fork mode libFuzzer exits with the status of its last child, a crash or not)
    if [ -z "$last" ]; then
        result="FAILED TO RUN (exit $rc; see the log)"
        status=1
    elif [ "$found" -gt 0 ]; then
        result="$found CRASHES (inputs in $crashes)"
        status=1
    else
        result="no crash"
    fi
    [ "$known" -gt 0 ] && result="$result; $known inside libhdf5, known defects (tests/fuzz/libhdf5/README.md)"
    summary+=("$(printf '%-11s %10s runs %6s exec/s  cov %-5s ft %-6s corpus %-5s %s' \
        "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result")")
    echo "${summary[-1]}"
    [ -f "$crashes/triage.txt" ] && cat "$crashes/triage.txt"
done

echo
echo "fuzz: ${seconds} s per target"
printf '%s\n' "${summary[@]}"
exit $status
