#!/bin/bash
# demo.sh — the main job on the embedded synthetic dataset (`make demo` runs it after
# installing and building): generate the dataset, train the AMPN demo, evaluate it next to the
# identity baseline, render one image with its predicted mask and with a weaker blur, plot the
# curves, and print the table and the paths of the pictures. Rerunning skips what is done
# (a finished training run, an existing dataset); an interrupted training resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
bin=build/bin
data=datasets/synth256
config=configs/demo_ampn.ini
run=runs/demo_ampn
start=$(date +%s)

if [ ! -f "$data/Training/bokeh/399.jpg" ]; then
    echo "== synthetic dataset: 400 pairs at height 256 -> $data"
    $bin/synth --out "$data" --count 400 --height 256 --seed 1
fi
$bin/check-data "$data" --split tail:40 --masks | tail -n 3

if [ -f "$run/ckpt/last.h5" ]; then
    echo "== training: continuing $run (nothing to do if it finished)"
    $bin/train --config "$config" --resume "$run/ckpt/last.h5"
else
    echo "== training AMPN on $data"
    $bin/train --config "$config"
fi

echo "== evaluation on the held-out pairs"
$bin/eval --checkpoint "$run/ckpt/best.h5" --config "$config" --size 256x384 --out "$run/eval" > /dev/null
$bin/eval --identity --config "$config" --out "$run/eval_identity" > /dev/null
$bin/eval --table "$run/eval_identity" "$run/eval" --out "$run/table" > /dev/null

echo "== rendering"
image=$(ls "$data/Training/original" | sort -n | tail -n 40 | head -n 1)
mkdir -p "$run/render"
$bin/render --checkpoint "$run/ckpt/best.h5" --input "$data/Training/original/$image" \
    --output "$run/render/predicted_mask.png" --save-mask "$run/render/mask.png" --size 256x384
$bin/render --checkpoint "$run/ckpt/best.h5" --input "$data/Training/original/$image" \
    --output "$run/render/strength_0.5.png" --strength 0.5 --size 256x384
$bin/plot "$run/log.csv" --out "$run/curves.png" > /dev/null

echo
cat "$run/table/table.md"
echo
echo "pictures:"
echo "  input                 $data/Training/original/$image"
echo "  target                $data/Training/bokeh/$image"
echo "  AMPN, predicted mask  $run/render/predicted_mask.png"
echo "  its mask              $run/render/mask.png"
echo "  AMPN, strength 0.5    $run/render/strength_0.5.png"
echo "  training curves       $run/curves.png"
echo "  validation samples    $run/samples/"
echo "demo finished in $(( $(date +%s) - start )) s"
