#!/bin/bash
# bench_mpi.sh — training throughput of one process against data-parallel ranks on this machine:
# DMSHN with the stage-1 losses (L1 + 0.1 SSIM) on 256x384 crops of synthetic pairs, global
# batch 4, as 1 process x 1 thread, 1 process x N threads and N ranks x 1 thread (mpirun on
# loopback). Prints steps/s and images/s, measured after the first log window (warm-up), for each
# of R rounds (the configurations alternate, so a load that changes affects them alike).
#   scripts/bench_mpi.sh [--ranks N] [--steps S] [--rounds R] [--keep]
# Needs build/bin/{train,synth} (make) and build-mpi/bin/train (make MPI=1).
set -euo pipefail

ranks=2 steps=16 rounds=1 keep=0
while [ $# -gt 0 ]; do
    case "$1" in
    --ranks) ranks=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: scripts/bench_mpi.sh [--ranks N] [--steps S] [--rounds R] [--keep]" >&2; exit 2 ;;
    esac
done
window=$((steps / 4))
[ "$window" -ge 1 ] || { echo "bench_mpi.sh: --steps must be at least 4" >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
for b in build/bin/train build/bin/synth build-mpi/bin/train; do
    [ -x "$here/$b" ] || { echo "bench_mpi.sh: no $b (make; make MPI=1)" >&2; exit 1; }
done
command -v mpirun >/dev/null || { echo "bench_mpi.sh: no mpirun (make MPI=1 deps)" >&2; exit 1; }

dir=$(mktemp -d /tmp/bk_bench_mpi_XXXXXX)
[ "$keep" = 1 ] || trap 'rm -rf "$dir"' EXIT
"$here/build/bin/synth" --out "$dir/ebb" --count 24 --height 320 --seed 3 >/dev/null 2>&1
cat >"$dir/bench.ini" <<EOF
[run]
out_dir = $dir/runs
[data]
root = $dir/ebb
split = tail:2
crop_h = 256
crop_w = 384
hflip = true
vflip = true
[model]
name = dmshn
[train]
steps = $steps
batch = 4
lr = 1e-4
log_every = $window
val_every = 0
val_max_images = 0
ckpt_every = 100000
samples = 0
[loss]
l1 = 1
ssim = 0.1
EOF

root_flag=()
[ "$(id -u)" -eq 0 ] && root_flag=(--allow-run-as-root)

# steps/s over the log windows after the first: steps / their seconds
rate() {
    awk -F, -v w="$window" 'NR > 1 && $1 > w { s += $13; n += w } END { if (s > 0) printf "%.3f", n / s; else print "nan" }' "$1"
}

# run NAME LABEL COMMAND...: trains with COMMAND and prints its rates
run() {
    local name=$1 label=$2
    shift 2
    "$@" --config "$dir/bench.ini" --no-progress --set "run.name=$name" >"$dir/$name.out" 2>&1 ||
        { echo "bench_mpi.sh: $label failed:" >&2; tail -5 "$dir/$name.out" >&2; exit 1; }
    local r
    r=$(rate "$dir/runs/$name/log.csv")
    printf '%-6s %-28s %10s %10s\n' "$round" "$label" "$r" "$(awk -v r="$r" 'BEGIN { printf "%.3f", 4 * r }')"
}

printf '%-6s %-28s %10s %10s\n' "round" "configuration" "steps/s" "images/s"
for round in $(seq 1 "$rounds"); do
    run "one_t1_$round" "1 process x 1 thread" env OMP_NUM_THREADS=1 "$here/build/bin/train"
    run "one_tn_$round" "1 process x $ranks threads" env OMP_NUM_THREADS="$ranks" "$here/build/bin/train"
    run "ranks_$round" "$ranks ranks x 1 thread" mpirun "${root_flag[@]}" -np "$ranks" -x OMP_NUM_THREADS=1 \
        "$here/build-mpi/bin/train"
done
[ "$keep" = 1 ] && echo "kept $dir"
exit 0
