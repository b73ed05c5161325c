#!/bin/bash
# run.sh — run test binaries and add up their results.
#   tests/run.sh DIR [name...]   runs DIR/test_* (or only the named ones)
# Each binary prints one line per case and ends with "N passed, N failed"; a binary that dies
# before its summary counts as one failure. The last line printed here is the total.
set -u
dir=$1; shift
if [ $# -gt 0 ]; then
    bins=(); for n in "$@"; do bins+=("$dir/$n"); done
else
    bins=("$dir"/test_*)
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
passed=0; failed=0
for b in "${bins[@]}"; do
    case "$b" in *.d|*.o) continue ;; esac
    [ -x "$b" ] || { echo "missing test binary $b"; failed=$((failed + 1)); continue; }
    echo "== $(basename "$b")"
    out=$("$b" 2>&1); rc=$?
    printf '%s\n' "$out"
    summary=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$summary" ]; then
        echo "FAIL $(basename "$b"): exited with status $rc before its summary"
        failed=$((failed + 1))
        continue
    fi
    p=${summary%% passed*}; f=${summary#*, }; f=${f%% failed}
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $(basename "$b"): exited with status $rc"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
