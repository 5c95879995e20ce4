#!/usr/bin/env bash
# The Kodak rate-distortion report: glic-lite and the equal-budget mbt2018-mean
# peer, both from the runs of benchmarks/rd/train.sh, coded for real beside JPEG, WebP, AVIF and
# JPEG 2000 (Pillow, same run), with VTM-9.1 and GLIC's published curve as
# reference anchors; then the training budget of both from their run folders.
#
#   bash benchmarks/rd/run.sh KODAK_DIR REFERENCE_DIR [RUNS_DIR] [OUT]
#
# KODAK_DIR: the 24 Kodak PNGs; REFERENCE_DIR: holds vtm.json and
# paper-glic2026_mse.json (CompressAI schema); RUNS_DIR: the runs of
# benchmarks/rd/train.sh (default runs/rd); OUT: default benchmarks/results/rd_kodak_cpu.
set -euo pipefail
K=${1:?usage: run.sh KODAK_DIR REFERENCE_DIR [RUNS_DIR] [OUT]}
REF=${2:?usage: run.sh KODAK_DIR REFERENCE_DIR [RUNS_DIR] [OUT]}
R=${3:-runs/rd}
OUT=${4:-benchmarks/results/rd_kodak_cpu}
PY=${PYTHON:-python}
QS=${QUALITIES:-"1 3 4 6"}
peer=()
lite=()
for q in $QS; do
    lite+=("glic-lite=$R/glic-lite-q$q/glic-lite-q$q.pt")
done
# The peer's runs: mbt2018-mean-n128 (train.sh), or mbt2018-mean for q1-4 (the same
# architecture under CompressAI's zoo name).
for q in $QS; do
    f=$R/mbt2018-mean-n128-q$q/mbt2018-mean-n128-q$q.pt
    [ -f "$f" ] || f=$R/mbt2018-mean-q$q/mbt2018-mean-q$q.pt
    peer+=("mbt2018-mean (equal budget)=$f")
done
for f in "$REF/vtm.json" "$REF/paper-glic2026_mse.json" "${lite[@]#*=}" "${peer[@]#*=}"; do
    [ -f "$f" ] || { echo "error: $f does not exist" >&2; exit 2; }
done
# shellcheck disable=SC2086
"$PY" -m pyg_glic eval "$K" --no-zoo -w "${lite[@]}" "${peer[@]}" \
    --classical jpeg webp avif jpeg2000 \
    -r "$REF/vtm.json" -r "$REF/paper-glic2026_mse.json" \
    --device "${DEVICE:-cpu}" -o "$OUT" --force
"$PY" benchmarks/rd/budget.py "$R" --models glic-lite mbt2018-mean-n128 --qualities $QS -o "$OUT" \
    --note "${NOTE:-}"
