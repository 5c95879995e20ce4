#!/usr/bin/env bash
# Create .venv/ at the repository root and install everything pyg_glic needs,
# from PyPI only, pinned by constraints.txt. Does nothing when .venv/ is already
# set up for the current pins (a stamp keyed on constraints.txt, setup.py and
# this script).
#
# The first run on a fresh 2-core machine takes about 14 minutes (805 s measured on
# 1 Dec 2026): torch (with its CUDA libraries, ~6 GB) downloads in ~3 minutes, and
# torch-scatter and torch-cluster compile from source (no wheels for this torch on
# PyPI), ~10 minutes with the two builds in parallel. pip caches the built wheels,
# so a second environment on the same machine takes a few minutes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
py="$venv/bin/python"
stamp="$venv/.pyg_glic-stamp"
key="$(cat constraints.txt setup.py scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)"

if [ -x "$py" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
    exit 0
fi

log() { echo "[bootstrap] $*" >&2; }
log "setting up $venv (first time: ~14 minutes, mostly compiling torch-scatter and torch-cluster)"
start=$SECONDS
if [ ! -x "$py" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
pip_install() { "$py" -m pip install --disable-pip-version-check -c constraints.txt "$@"; }
pip_install -q --upgrade pip setuptools wheel -c /dev/null
pip_install torch torchvision
pip_install numpy torch-geometric compressai pillow tqdm matplotlib pytorch-msssim bjontegaard pytest scikit-learn

# The compiled extensions: both builds in parallel, against the installed torch.
# A cached wheel built against another torch imports badly: then rebuild without cache.
build_ext() {  # $1 = pip name, $2 = module
    local name=$1 mod=$2 logf="$venv/build-$1.log"
    if "$py" -c "import $mod" >/dev/null 2>&1; then return 0; fi
    pip_install --no-build-isolation "$name" >"$logf" 2>&1 || return 1
    if ! "$py" -c "import $mod" >/dev/null 2>&1; then
        pip_install --no-build-isolation --no-cache-dir --force-reinstall --no-deps "$name" >>"$logf" 2>&1 || return 1
        "$py" -c "import $mod" >>"$logf" 2>&1 || return 1
    fi
}
log "building torch-scatter and torch-cluster (logs: $venv/build-*.log)"
build_ext torch-scatter torch_scatter & p1=$!
build_ext torch-cluster torch_cluster & p2=$!
ok=1
wait $p1 || { log "torch-scatter failed: see $venv/build-torch-scatter.log"; ok=0; }
wait $p2 || { log "torch-cluster failed: see $venv/build-torch-cluster.log"; ok=0; }
[ $ok = 1 ] || exit 1

pip_install -q --no-deps -e .
"$py" -c "import torch, torch_geometric, torch_scatter, torch_cluster, compressai, pyg_glic; \
print('[bootstrap] ready: pyg_glic', pyg_glic.__version__, '| torch', torch.__version__, \
'| torch_geometric', torch_geometric.__version__, '| compressai', compressai.__version__)"
echo "$key" > "$stamp"
log "done in $((SECONDS - start)) s"
