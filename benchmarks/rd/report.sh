#!/usr/bin/env bash
# The Kodak report of the shipped codec: the package's glic-lite weights (one
# variable-rate model) coded for real at several qualities on the 24 Kodak images,
# beside JPEG, WebP, AVIF and JPEG 2000 (Pillow, same run) and the published VTM-9.1
# and GLIC curves; BD-rates, RD plot; then the trained-codec target (benchmarks/rd/
# target.py: better than JPEG at every point of 0.25-1.0 bpp, BD-rate <= -10% over
# >= 80% overlap) with the training budget of the shipped weights.
#
#   bash benchmarks/rd/report.sh KODAK_DIR REFERENCE_DIR [OUT]
#
# KODAK_DIR: the 24 Kodak PNGs; REFERENCE_DIR: holds vtm.json and
# paper-glic2026_mse.json (CompressAI schema); OUT: default
# benchmarks/results/rd_kodak_shipped. QUALITIES (environment): the qualities coded
# (default "1 1.5 2 2.5 3 4 5 6"). One intra-op thread (OMP_NUM_THREADS, default 1),
# as the codec's own default: about 25 minutes on this project's 2-core CPU.
set -euo pipefail
K=${1:?usage: report.sh KODAK_DIR REFERENCE_DIR [OUT]}
REF=${2:?usage: report.sh KODAK_DIR REFERENCE_DIR [OUT]}
OUT=${3:-benchmarks/results/rd_kodak_shipped}
PY=${PYTHON:-python}
QS=${QUALITIES:-"1 1.5 2 2.5 3 4 5 6"}
SHIPPED=${SHIPPED:-benchmarks/results/rd_campaign/shipped.json}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for f in "$REF/vtm.json" "$REF/paper-glic2026_mse.json" "$SHIPPED" \
         pyg_glic/zoo/weights/glic-lite.pt; do
    [ -f "$f" ] || { echo "error: $f does not exist" >&2; exit 2; }
done
# shellcheck disable=SC2086
"$PY" -m pyg_glic eval "$K" -c glic-lite -q $QS \
    --classical jpeg webp avif jpeg2000 \
    -r "$REF/vtm.json" -r "$REF/paper-glic2026_mse.json" \
    --device cpu -o "$OUT" --force
# exit status 1: the target does not hold yet (the report is written either way)
rc=0
"$PY" benchmarks/rd/target.py "$OUT" --shipped "$SHIPPED" \
    --weights pyg_glic/zoo/weights/glic-lite.pt || rc=$?
[ "$rc" -le 1 ] || exit "$rc"
