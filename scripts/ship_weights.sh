#!/bin/bash
# Ship runs/chain_NAME.safetensors as the package's weights (float16) and remake everything that
# describes them: the previous file kept as runs/shipped_before_NAME, its docs tables as
# table_previous_weights_SHA8.txt; goldens; the four docs evaluations; the mouth/eye regions and
# tilt by yaw against PREV's evaluations (runs/eval_{ict,std}_PREV, with headers); the sheets; the
# loss curves of the runs in $RUNS; the demo photos' open mouths (b4114fe's file, the previous
# file and the new one). The model card, README and recipe are written by hand afterwards.
#
#   RUNS="dense_X dense_X_settle" scripts/ship_weights.sh NAME PREV STEP
#
# SHIP_HALF=False stores float32 (steps before 26); REGIONS lists other evaluations for the regions.
#
set -e
NAME=${1:?usage: ship_weights.sh NAME PREV STEP}; PREV=${2:?previous chain name}; STEP=${3:?recipe step}
cd "$(dirname "$0")/.."
DF2NET=.venv/bin/df2net; PY=.venv/bin/python
mkdir -p logs
OLD=$($PY -c "from df2net.model import load_weights; print(load_weights('src/df2net/weights/df2net_cpu.safetensors').metadata['sha256'][:8])")
for d in evaluation evaluation_ict evaluation_relief evaluation_demo_fits; do
  cp docs/$d/table.txt docs/$d/table_previous_weights_$OLD.txt
done
cp src/df2net/weights/df2net_cpu.safetensors runs/shipped_before_$NAME.safetensors
$PY - <<PY
from df2net.model import load_weights
from df2net.model.weights import save_weights
new = load_weights('runs/chain_$NAME.safetensors')
save_weights(new.model, new.config, 'src/df2net/weights/df2net_cpu.safetensors', recipe=new.metadata.get('recipe'),
             extra={'gain_calibration': new.metadata['gain_calibration']}, half=${SHIP_HALF:-True})
print(load_weights('src/df2net/weights/df2net_cpu.safetensors').metadata['sha256'])
PY
$PY scripts/make_golden.py
echo "golden $(date)"
$DF2NET evaluate data/synth_eval -o docs/evaluation > logs/ship_eval_std.log 2>&1
$DF2NET evaluate data/ict_eval -o docs/evaluation_ict > logs/ship_eval_ict.log 2>&1
$DF2NET evaluate data/synth_relief_eval -o docs/evaluation_relief --no-baselines > logs/ship_eval_relief.log 2>&1
$DF2NET evaluate data/fits_demo -o docs/evaluation_demo_fits --no-baselines > logs/ship_eval_fits.log 2>&1
echo "docs evals $(date)"
{ echo "# scripts/expression_regions.py data/ict_eval, $(date +%F). eval_ict_shipped = b4114fe's file (c66e76e8); eval_ict_$PREV = the previous file ($OLD);"
  echo "# eval_ict_$NAME = this file (step $STEP). Only the finer stage and the landmark fits are listed."
  $PY scripts/expression_regions.py data/ict_eval ${REGIONS:-runs/eval_ict_shipped runs/eval_ict_$PREV runs/eval_ict_$NAME} | grep -v "dense\|/fine " ; } > /tmp/regions.txt
cp /tmp/regions.txt docs/evaluation_ict/regions.txt
{ echo "# python scripts/tilt_share.py data/ict_eval runs/eval_ict_$NAME runs/eval_ict_$PREV (the shipped file, step $STEP; runs/eval_ict_$PREV: the previous file)"
  $PY scripts/tilt_share.py data/ict_eval runs/eval_ict_$NAME runs/eval_ict_$PREV; } > /tmp/tilt_ict.txt
cp /tmp/tilt_ict.txt docs/evaluation_ict/tilt.txt
{ echo "# python scripts/tilt_share.py data/synth_eval runs/eval_std_$NAME runs/eval_std_$PREV (the shipped file, step $STEP; runs/eval_std_$PREV: the previous file)"
  $PY scripts/tilt_share.py data/synth_eval runs/eval_std_$NAME runs/eval_std_$PREV; } > /tmp/tilt_std.txt
cp /tmp/tilt_std.txt docs/evaluation/tilt.txt
echo "regions tilt $(date)"
$PY scripts/expressions_sheet.py docs/expressions.png ../shared/data/df2net_demo/{22,19,4,1}.png \
  --before runs/shipped_c66e76e8.safetensors --after src/df2net/weights/df2net_cpu.safetensors
$PY scripts/contact_sheet.py ../shared/data/df2net_demo docs/demo_previews.png
for r in ${RUNS:-}; do cp runs/$r/loss_curve.png docs/training_${r}_loss.png; done
echo "sheets $(date)"
$PY scripts/open_mouths.py ../shared/data/df2net_demo/*.png --weights runs/shipped_c66e76e8.safetensors \
  --weights runs/shipped_before_$NAME.safetensors --weights src/df2net/weights/df2net_cpu.safetensors
echo "all done $(date)"
