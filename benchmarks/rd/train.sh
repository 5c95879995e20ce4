#!/usr/bin/env bash
# The training recipe behind benchmarks/rd: glic-lite and the equal-budget peer
# (CompressAI's mbt2018-mean at one size, N=128 M=192, for every quality:
# "mbt2018-mean-n128") with the same data, steps, schedule and device.
#
#   bash benchmarks/rd/train.sh TRAIN_ROOT [RUNS_DIR]
#
# TRAIN_ROOT holds bsds500/{train,test,val} and sun_hays80 (../shared/datasets/train
# here). One main run at quality MAIN (STEPS_MAIN steps at LR_MAIN), then each other
# quality fine-tuned from it (--init-from, STEPS_FT steps at LR_FT). The budget is set
# by the environment (defaults: the 2-core CPU run committed in benchmarks/rd/results):
#   MODELS="glic-lite mbt2018-mean-n128" MAIN=3 OTHERS="1 4 6" STEPS_MAIN=1300 STEPS_FT=300
#   LR_MAIN=3e-4 LR_FT=1e-4 CROP=128 BATCH=8 WORKERS=1
# Every run writes RUNS_DIR/<model>-q<q>/{checkpoint.pt,metrics.jsonl,args.json} and
# an fp16 export RUNS_DIR/<model>-q<q>/<model>-q<q>.pt; a finished run is skipped, an
# interrupted one resumed.
set -euo pipefail
T=${1:?usage: train.sh TRAIN_ROOT [RUNS_DIR]}
R=${2:-runs/rd}
MODELS=${MODELS:-"glic-lite mbt2018-mean-n128"}
MAIN=${MAIN:-3}; OTHERS=${OTHERS:-"1 4 6"}
STEPS_MAIN=${STEPS_MAIN:-1300}; STEPS_FT=${STEPS_FT:-300}
LR_MAIN=${LR_MAIN:-3e-4}; LR_FT=${LR_FT:-1e-4}
CROP=${CROP:-128}; BATCH=${BATCH:-8}; WORKERS=${WORKERS:-1}
for d in "$T/bsds500/train" "$T/bsds500/test" "$T/sun_hays80" "$T/bsds500/val"; do
    [ -d "$d" ] || { echo "error: $d is not a folder (expected TRAIN_ROOT/bsds500/{train,test,val} and TRAIN_ROOT/sun_hays80)" >&2; exit 2; }
done
mkdir -p "$R"
PY=${PYTHON:-python}
run() {  # run MODEL Q STEPS LR [extra...]
    local model=$1 q=$2 steps=$3 lr=$4; shift 4
    local out="$R/$model-q$q"
    if [ -f "$out/$model-q$q.pt" ]; then echo "== $out done, skipped"; return; fi
    local common=(--export "$out/$model-q$q.pt" --force --no-progress)
    if [ -f "$out/checkpoint.pt" ]; then
        echo "== resume $out"
        "$PY" -m pyg_glic train --resume "$out/checkpoint.pt" "${common[@]}"
        return
    fi
    echo "== train $out ($steps steps, lr $lr)"
    "$PY" -m pyg_glic train "$T/bsds500/train" "$T/bsds500/test" "$T/sun_hays80" \
        -c "$model" -q "$q" --steps "$steps" --lr "$lr" --batch-size "$BATCH" \
        --crop-size "$CROP" --workers "$WORKERS" --cache-images \
        --val "$T/bsds500/val" --val-every 500 --val-max-images 10 \
        --log-every 50 --checkpoint-every 100 -o "$out" "${common[@]}" "$@"
}
for model in $MODELS; do
    run "$model" "$MAIN" "$STEPS_MAIN" "$LR_MAIN"
    for q in $OTHERS; do
        run "$model" "$q" "$STEPS_FT" "$LR_FT" --init-from "$R/$model-q$MAIN/checkpoint.pt"
    done
done
