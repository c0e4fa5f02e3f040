#!/usr/bin/env bash
# The held-out sets that judge weights (scripts/shipping_rule.py) and the relief network's
# validation renders, made again from their seeds on a fresh machine (training/recipe.sh runs it
# first; the shipped file scores on them what its model card says). About 12 minutes on 2 cores;
# make-data keeps what a folder already holds.
# Needs the train extra and ../shared/data. A render whose face no pose lets the detector find is
# left out and named (make-data then exits 1; synth_relief_val2 holds 119 of its 120): the script
# goes on to the next set.
set -uo pipefail
cd "$(dirname "$0")/.."
DF2NET=".venv/bin/df2net"
DEMO=../shared/data/df2net_demo
TEX=data/fits_demo/textures
RELIEF_FLAGS=(--plain-skin 1.0 --marks 1.0 --strong-light 0.35 --fold-gain 1.7)

# the photo textures that dress the renders (and the Surrey fits of the demo photos)
$DF2NET make-data fits --face-model sfm $DEMO --out data/fits_demo --seed 0 --workers 2
$DF2NET make-data fits --face-model ict $DEMO --out data/ict_fits --seed 0 --workers 2
# the four sets of the shipping rule: ICT renders (target), the standard set, the relief set and
# the 200 Surrey renders (guards)
$DF2NET make-data synthetic --face-model ict --out data/ict_eval --seed 9100 --count 60 \
  --texture-cache data/ict_fits/textures --workers 2
$DF2NET make-data synthetic --face-model sfm $DEMO --out data/synth_eval --seed 7777 --count 40 --texture-cache $TEX --workers 2
$DF2NET make-data synthetic --face-model sfm $DEMO --out data/synth_relief_eval --seed 7100 --count 30 \
  "${RELIEF_FLAGS[@]}" --texture-cache $TEX --workers 2
$DF2NET make-data synthetic --face-model sfm $DEMO --out data/synth_eval_big --seed 7800 --count 200 --texture-cache $TEX --workers 2
# the relief network's validation renders (train-relief --val, --scan-gain)
$DF2NET make-data synthetic --face-model sfm $DEMO --out data/synth_relief_val --seed 4300 --count 24 \
  "${RELIEF_FLAGS[@]}" --texture-cache $TEX --workers 2
$DF2NET make-data synthetic --face-model sfm $DEMO --out data/synth_relief_val2 --seed 4400 --count 120 \
  "${RELIEF_FLAGS[@]}" --texture-cache $TEX --workers 2
