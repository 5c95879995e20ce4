#!/usr/bin/env bash
# The test command: set up .venv/ if needed (scripts/bootstrap.sh), then run pytest.
# Tests marked slow (torch.compile, big parameter counts) are skipped by default
# (pytest.ini) and run when CI=true or with `bash scripts/test.sh -m ""`.
# Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
# Idle OpenMP threads sleep instead of spinning, so tests (and anything else on the
# machine, such as a training run) do not slow each other down 5-100x on a few cores.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
marker=()
if [ "${CI:-}" = "true" ]; then
    marker=(-m "")
fi
exec "$root/.venv/bin/python" -m pytest "${marker[@]}" "$@"
