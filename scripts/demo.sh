#!/usr/bin/env bash
# The main job: set up .venv/ if needed (scripts/bootstrap.sh), then run
# `pyg-glic demo` on the bundled image. Extra arguments go to `pyg-glic demo`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
exec "$root/.venv/bin/pyg-glic" demo "$@"
