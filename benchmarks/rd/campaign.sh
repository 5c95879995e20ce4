#!/usr/bin/env bash
# The campaign: ONE long, resumable CPU training run of the variable-rate glic-lite,
# in chunks of CHUNK steps; after each chunk a learning-curve point on Kodak
# (benchmarks/rd/curve.py: real bitstreams, PSNR gap to JPEG and WebP at equal bpp),
# and the EMA weights exported to the zoo when they beat the shipped ones.
#
#   bash benchmarks/rd/campaign.sh [TRAIN_ROOT] [KODAK_DIR]
#
# TRAIN_ROOT holds bsds500/{train,test,val} and sun_hays80 (default
# ../shared/datasets/train), KODAK_DIR the Kodak PNGs (default ../shared/datasets/kodak),
# both relative to the repository root when not given. Knobs (environment, defaults):
#   RUN=runs/campaign-glic-lite TOTAL=60000 (steps of the schedule) CHUNK=2000 (steps
#   between curve points) BATCH=8 CROP=128 LATE_CROP= (none; e.g. 256 for a late phase)
#   LATE_BATCH=2 LATE_FROM=0.88 LR=3e-4 LR_MIN=1e-5 WARMUP=0 EMA=0.999 WORKERS=1 THREADS=1
#   NICE=19 CONFIG=glic-lite ORTHO=0 CKPT_EVERY=200 IMAGES=01,05,07,13,15,23
#   QUALITIES=1.5,3,4.5,6 CURVE_DIR=benchmarks/results/rd_campaign
#   SHIP=pyg_glic/zoo/weights/$CONFIG.pt SHIP_HOURS=3 SHIP_MIN_GAIN=0 (dB over JPEG; empty = none) PY=.venv/bin/python
#   CODE=commit (run the code of the checked-out commit, copied to $RUN/code) or worktree
# Relative paths in knobs are relative to the repository root.
#
# The code it runs: the campaign trains for days, across sessions, while the repository
# is edited. With CODE=commit (default) each start copies pyg_glic/ and benchmarks/ of
# the checked-out commit (git archive) to $RUN/code and runs only that copy
# (PYTHONPATH, PYTHONSAFEPATH), so an edit in progress can neither change nor break a
# chunk or a curve point; uncommitted edits are not used, and the next start picks up
# new commits.
#
# Each pass: resume $RUN/checkpoint.pt up to the next multiple of CHUNK (or start the
# run, warm-started from $SHIP when it exists); then curve.py on the checkpoint
# (appends a row to $CURVE_DIR/curve.csv, redraws curve.png); then, if the row's
# gain_vs_jpeg_db beats the one recorded in $CURVE_DIR/shipped.json and SHIP_HOURS
# CPU-hours of training have passed since that export (or nothing ships yet), the EMA
# weights are exported as fp16 to $SHIP and shipped.json is updated. Nothing is
# committed: the session commits the curve files and the weights.
#
# Stop it with `kill -TERM $(cat $RUN/campaign.pid)` (or Ctrl-C): the trainer finishes
# its step, writes its checkpoint and the campaign exits 0; the next start resumes.
# One campaign per $RUN ($RUN/campaign.lock). Log: $RUN/campaign.log (timestamped).
set -uo pipefail

abspath() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }

self="$(abspath "${BASH_SOURCE[0]}")"
root="$(cd "$(dirname "$self")/../.." && pwd)"

NICE=${NICE:-19}
cur_nice=$(nice)
if [ "$cur_nice" -lt "$NICE" ]; then
    exec nice -n $((NICE - cur_nice)) bash "$self" "$@"
fi

T=$(abspath "${1:-$root/../shared/datasets/train}")
KODAK=$(abspath "${2:-$root/../shared/datasets/kodak}")
cd "$root"

CONFIG=${CONFIG:-glic-lite}
RUN=${RUN:-runs/campaign-$CONFIG}
TOTAL=${TOTAL:-60000}; CHUNK=${CHUNK:-2000}
BATCH=${BATCH:-8}; CROP=${CROP:-128}
# The recipe of a new run keeps only what the A/B runs showed to help
# (benchmarks/results/rd_ab/ab_train.md): the decay to LR_MIN and the EMA; no warm-up, no
# orthogonality penalty and no late large crops by default. A resumed run keeps its own.
LATE_CROP=${LATE_CROP:-}; LATE_BATCH=${LATE_BATCH:-2}; LATE_FROM=${LATE_FROM:-0.88}
LR=${LR:-3e-4}; LR_MIN=${LR_MIN:-1e-5}; WARMUP=${WARMUP:-0}; EMA=${EMA:-0.999}
# One torch thread: a second one gained nothing measurable per step on this 2-core CPU
# (benchmarks/results/training_cpu.md) and is better left to other work.
ORTHO=${ORTHO:-0}; WORKERS=${WORKERS:-1}; THREADS=${THREADS:-1}
CKPT_EVERY=${CKPT_EVERY:-200}
IMAGES=${IMAGES:-01,05,07,13,15,23}; QUALITIES=${QUALITIES:-1.5,3,4.5,6}
CURVE_DIR=${CURVE_DIR:-benchmarks/results/rd_campaign}
SHIP=${SHIP:-pyg_glic/zoo/weights/$CONFIG.pt}
# Nothing ships until it codes better than JPEG at equal bpp on the check (issue 13:
# "shipped when it beats JPEG"); SHIP_MIN_GAIN= (empty) lifts that floor.
SHIP_HOURS=${SHIP_HOURS:-3}; SHIP_MIN_GAIN=${SHIP_MIN_GAIN-0}
CSV=$CURVE_DIR/curve.csv; PNG=$CURVE_DIR/curve.png; SHIPPED=$CURVE_DIR/shipped.json
CK=$RUN/checkpoint.pt; LOG=$RUN/campaign.log

die() { echo "error: $*" >&2; exit 2; }
for v in TOTAL CHUNK THREADS WORKERS CKPT_EVERY; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
[ "$TOTAL" -ge 1 ] && [ "$CHUNK" -ge 1 ] && [ "$THREADS" -ge 1 ] || die "TOTAL, CHUNK and THREADS must be at least 1"
for d in "$T/bsds500/train" "$T/bsds500/test" "$T/sun_hays80"; do
    [ -d "$d" ] || die "$d is not a folder (expected TRAIN_ROOT/bsds500/{train,test} and TRAIN_ROOT/sun_hays80)"
done
[ -d "$KODAK" ] || die "KODAK_DIR $KODAK is not a folder"

if [ -z "${PY:-}" ]; then
    bash scripts/bootstrap.sh || die "scripts/bootstrap.sh failed"
    PY=$root/.venv/bin/python
fi
[ -x "$PY" ] || die "no python at $PY"
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS PYTHONUNBUFFERED=1
# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning
# threads made every operator many times slower (benchmarks/training/README.md).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# torch_geometric's import calls the deprecated torch.jit.script: keep it out of the log
export PYTHONWARNINGS="ignore:\`torch.jit.script\` is deprecated:FutureWarning${PYTHONWARNINGS:+,$PYTHONWARNINGS}"

# ---- one instance per run folder ------------------------------------------------------
mkdir -p "$RUN" "$CURVE_DIR" || die "cannot create $RUN or $CURVE_DIR"
exec 9>>"$RUN/campaign.lock"
if ! flock -n 9; then
    echo "error: a campaign already runs on $RUN (pid $(cat "$RUN/campaign.pid" 2>/dev/null || echo '?'))" >&2
    exit 1
fi
echo $$ >"$RUN/campaign.pid"
trap '[ "$(cat "$RUN/campaign.pid" 2>/dev/null)" = "$$" ] && rm -f "$RUN/campaign.pid"' EXIT

now() { TZ=UTC printf '%(%Y-%m-%dT%H:%M:%SZ)T' -1; }
log() { local line; line="$(now) [campaign] $*"; echo "$line" >>"$LOG"; echo "$line"; }
stamp() { local l; while IFS= read -r l; do printf '%s %s\n' "$(now)" "$l"; done; }
# helper CMD...: a short foreground command, its stderr stamped into the log
helper() { "$@" 2> >(trap '' INT TERM HUP; stamp >>"$LOG"); }

# ---- the code it runs: one commit, not the working tree --------------------------------
CODE=${CODE:-commit}
case $CODE in
    commit)
        commit=$(git -C "$root" rev-parse HEAD 2>/dev/null) \
            || die "$root is not a git checkout: set CODE=worktree"
        snap=$(abspath "$RUN/code")
        if [ "$(cat "$snap/.commit" 2>/dev/null)" != "$commit" ]; then
            rm -rf "$snap.tmp" && mkdir -p "$snap.tmp" \
                && git -C "$root" archive "$commit" pyg_glic benchmarks | tar -x -C "$snap.tmp" \
                && echo "$commit" >"$snap.tmp/.commit" && rm -rf "$snap" && mv "$snap.tmp" "$snap" \
                || die "cannot copy the code of commit $commit to $snap"
        fi
        CODE_DIR=$snap
        dirty=$(git -C "$root" status --porcelain -- pyg_glic benchmarks 2>/dev/null | head -c1)
        log "code: commit ${commit:0:10}, copied to $CODE_DIR${dirty:+ (uncommitted edits in the working tree are not used)}" ;;
    worktree) CODE_DIR=$root ;;
    *) die "CODE must be commit or worktree, got '$CODE'" ;;
esac
# The copy's pyg_glic first; no script or current folder prepended (Python 3.11+), so
# the working tree's pyg_glic/ (the current folder) cannot shadow it.
export PYTHONPATH="$CODE_DIR${PYTHONPATH:+:$PYTHONPATH}" PYTHONSAFEPATH=1 CAMPAIGN_CODE=$CODE_DIR

# ---- signals: forward to the running child, let it checkpoint, then exit --------------
child=""; child_what=""; stop_sig=""; rc=0
on_signal() {
    [ -n "$stop_sig" ] && return
    stop_sig=$1
    log "received SIG$1: stopping${child:+ ($child_what, pid $child, gets SIGTERM)}"
    [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
}
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT
trap 'on_signal HUP' HUP

# nice orders processes only within one autogroup, and Linux (sched_autogroup, on by
# default) makes one per session: a niced process in a session of its own competes with
# every other session's work as an equal. So each child's session also gets its
# autogroup's niceness set to NICE (where the kernel has autogroups), then execs the
# command (same pid: the signals reach it).
AUTOGROUP_NICE='[ -w /proc/self/autogroup ] && echo "$0" 2>/dev/null >/proc/self/autogroup; exec "$@"'
[ -w /proc/self/autogroup ] && echo "$NICE" 2>/dev/null >/proc/self/autogroup

run_child() {  # run_child CMD...: in its own session (a terminal's Ctrl-C reaches only
    # this script, which forwards one SIGTERM), at NICE, output stamped into the log; sets rc
    setsid bash -c "$AUTOGROUP_NICE" "$NICE" "$@" > >(trap '' INT TERM HUP; stamp >>"$LOG") 2>&1 &
    child=$!
    case " $* " in
        *" train "*) child_what="the trainer: it finishes its step and checkpoints" ;;
        *curve.py*) child_what="curve.py: abandoned, the CSV unchanged; redone at the next start" ;;
        *) child_what="$2" ;;
    esac
    [ -n "$stop_sig" ] && kill -TERM "$child" 2>/dev/null  # a signal before $! was known
    wait "$child"; rc=$?
    while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
    if [ "$rc" -gt 128 ]; then  # the wait may have been cut short by our own trap
        local r; wait "$child" 2>/dev/null; r=$?
        [ "$r" -ne 127 ] && rc=$r
    fi
    child=""; child_what=""
}

INFO_PY='
import csv, os, sys
from pyg_glic.training.checkpoint import load_checkpoint
c = load_checkpoint(sys.argv[1])
step = int(c["step"]); total = int((c.get("args") or {}).get("steps") or 0)
hours = float(c.get("cpu_seconds") or 0.0) / 3600
have = 0
if os.path.isfile(sys.argv[2]):
    with open(sys.argv[2], newline="") as f:
        have = int(any(r.get("step") == str(step) for r in csv.DictReader(f)))
print(step, total, "%.3f" % hours, have)
'
step=0; total=$TOTAL; hours=0; have_curve=0
read_state() {  # step, total, hours, have_curve of $CK
    local out
    out=$(helper "$PY" -c "$INFO_PY" "$CK" "$CSV") || return 1
    read -r step total hours have_curve <<<"$out"
}

# Export rule. Prints "ship <why>" or "keep <why>".
DECIDE_PY='
import csv, json, math, os, sys
csv_path, shipped, ship_file, step, min_hours, min_gain = sys.argv[1:7]
rows = [r for r in csv.DictReader(open(csv_path, newline="")) if r["step"] == step]
row = rows[-1]
gain, hours = float(row["gain_vs_jpeg_db"]), float(row["cpu_hours"] or 0)
if min_gain and gain <= float(min_gain):
    print(f"keep gain {gain:+.3f} dB is not above SHIP_MIN_GAIN {min_gain}"); sys.exit()
if not (os.path.isfile(shipped) and os.path.isfile(ship_file)):
    print(f"ship nothing ships yet (gain vs JPEG {gain:+.3f} dB)"); sys.exit()
s = json.load(open(shipped))
old, since = float(s["gain_vs_jpeg_db"]), hours - float(s.get("cpu_hours") or 0)
if gain > old and since >= float(min_hours):
    print(f"ship gain {gain:+.3f} dB beats the shipped {old:+.3f} dB, {since:.2f} CPU-h later")
else:
    print(f"keep gain {gain:+.3f} dB vs shipped {old:+.3f} dB, {since:.2f} CPU-h since its export")
'
# Write shipped.json from a CSV row: argv = csv, step, shipped.json, file, source, hours|"".
RECORD_PY='
import csv, datetime, hashlib, json, os, sys, tempfile
csv_path, step, shipped, ship_file, source, hours = sys.argv[1:7]
row = [r for r in csv.DictReader(open(csv_path, newline="")) if r["step"] == step][-1]
rec = {"step": int(row["step"]) if row["step"] else None,
       "cpu_hours": float(hours) if hours else float(row["cpu_hours"] or 0),
       "gain_vs_jpeg_db": float(row["gain_vs_jpeg_db"]),
       "gain_vs_webp_db": float(row["gain_vs_webp_db"]),
       "weights": row["weights"], "source": source, "file": ship_file,
       "sha256": hashlib.sha256(open(ship_file, "rb").read()).hexdigest(),
       "exported_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
       "row": row}
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(shipped) or ".", prefix=".shipped.")
with os.fdopen(fd, "w") as f:
    json.dump(rec, f, indent=1); f.write("\n")
os.chmod(tmp, 0o644)
os.replace(tmp, shipped)
'
# EMA weights of a checkpoint -> fp16 weights file: the entropy bottleneck's quantiles
# refreshed as curve.py codes them (CompressAI's update(update_quantiles=True)), then
# export_weights, and the file read back once.
EXPORT_PY='
import sys
from pathlib import Path
import os
sys.path.insert(0, os.path.join(os.environ["CAMPAIGN_CODE"], "benchmarks", "rd"))
from curve import load_codec
from pyg_glic.training.models import export_weights, load_model_file
net, info = load_codec(Path(sys.argv[1]))
net.eval()
net.update(force=True, update_quantiles=True)
export_weights(net, sys.argv[2], info["config"], None)
load_model_file(sys.argv[2])
print("exported the %s weights of step %s to %s" % (info["weights"], info["step"], sys.argv[2]))
'
export_ema() {  # export_ema CHECKPOINT: -> $SHIP (through a temporary file)
    local tmp; tmp="$(dirname "$SHIP")/.$(basename "$SHIP").campaign-tmp.pt"
    mkdir -p "$(dirname "$SHIP")" && rm -f "$tmp"
    helper "$PY" -c "$EXPORT_PY" "$1" "$tmp" >/dev/null || { rm -f "$tmp"; return 1; }
    chmod a+r "$tmp" && mv -f "$tmp" "$SHIP"
}

curve() {  # curve FILE CSV [--plot PNG]: one curve.py row; sets rc
    run_child "$PY" "$CODE_DIR/benchmarks/rd/curve.py" "$1" --kodak "$KODAK" --images "$IMAGES" \
        --qualities "$QUALITIES" --csv "$2" --threads "$THREADS" "${@:3}"
}

# The shipped weights' own row, when they were not exported by this campaign.
baseline() {
    [ -f "$SHIP" ] || return 0
    local sha; sha=$(sha256sum "$SHIP" | cut -d' ' -f1)
    if [ -f "$SHIPPED" ] && grep -q "\"sha256\": \"$sha\"" "$SHIPPED"; then return 0; fi
    log "measuring the shipped $SHIP (not recorded in $SHIPPED) as the export baseline"
    local bcsv=$CURVE_DIR/shipped_baseline.csv
    curve "$SHIP" "$bcsv"
    [ -n "$stop_sig" ] && return 1
    if [ "$rc" -ne 0 ]; then log "warning: could not measure $SHIP (status $rc); it counts as not shipped"; return 0; fi
    local last; last=$(helper "$PY" -c 'import csv, sys; print(list(csv.DictReader(open(sys.argv[1])))[-1]["step"])' "$bcsv")
    helper "$PY" -c "$RECORD_PY" "$bcsv" "$last" "$SHIPPED" "$SHIP" "pre-existing file, measured" "$hours" \
        && log "baseline recorded in $SHIPPED: $(grep -o '"gain_vs_jpeg_db": [^,]*' "$SHIPPED")"
}

curve_failed=""
curve_and_ship() {  # the curve point of checkpoint step $step, then the export rule
    log "curve: coding step $step (${hours} CPU-h) on Kodak $IMAGES at qualities $QUALITIES"
    curve "$CK" "$CSV" --plot "$PNG"
    [ -n "$stop_sig" ] && return 1
    if [ "$rc" -ne 0 ]; then
        log "warning: curve.py failed on step $step (status $rc, see the log); training goes on"
        curve_failed=$step; return 0
    fi
    local verdict
    verdict=$(helper "$PY" -c "$DECIDE_PY" "$CSV" "$SHIPPED" "$SHIP" "$step" "$SHIP_HOURS" "$SHIP_MIN_GAIN") \
        || { log "warning: the export rule failed (see the log)"; return 0; }
    log "export rule: $verdict"
    case $verdict in
        ship*)
            if export_ema "$CK"; then
                helper "$PY" -c "$RECORD_PY" "$CSV" "$step" "$SHIPPED" "$SHIP" "$CK" ""
                log "exported the EMA weights of step $step to $SHIP (fp16); $SHIPPED updated; commit both"
            else
                log "warning: the export of step $step failed (see the log); $SHIP unchanged"
            fi ;;
    esac
    return 0
}

stopped() {
    read_state 2>/dev/null && log "stopped cleanly at step $step of $total ($hours CPU-h)" \
        || log "stopped"
    exit 0
}

# ---- start --------------------------------------------------------------------------------
if [ -f "$CK" ]; then
    read_state || die "cannot read $CK (see $LOG)"
    log "campaign (pid $$): resuming $RUN at step $step of $total ($hours CPU-h), chunks of $CHUNK"
    [ "$total" = "$TOTAL" ] || log "note: the run's schedule has $total steps; TOTAL=$TOTAL is ignored"
else
    log "campaign (pid $$): fresh start of $CONFIG in $RUN, $TOTAL steps in chunks of $CHUNK, $(
        [ -f "$SHIP" ] && echo "warm start from $SHIP" || echo "from scratch")"
fi
baseline || stopped

while :; do
    [ -n "$stop_sig" ] && stopped
    if [ -f "$CK" ]; then
        read_state || { [ -n "$stop_sig" ] && stopped; die "cannot read $CK (see $LOG)"; }
    fi
    if [ "$step" -gt 0 ] && [ "$have_curve" = 0 ] && [ "$step" != "$curve_failed" ] \
        && { [ $((step % CHUNK)) -eq 0 ] || [ "$step" -ge "$total" ]; }; then
        curve_and_ship || stopped
    fi
    [ -n "$stop_sig" ] && stopped
    if [ "$step" -ge "$total" ]; then
        log "campaign done: step $step of $total ($hours CPU-h)"
        exit 0
    fi
    next=$(( (step / CHUNK + 1) * CHUNK )); [ "$next" -gt "$total" ] && next=$total
    if [ -f "$CK" ]; then
        args=(--resume "$CK" --stop-at "$next" --workers "$WORKERS" --no-progress
              --checkpoint-every "$CKPT_EVERY")
    else
        args=("$T/bsds500/train" "$T/bsds500/test" "$T/sun_hays80" -c "$CONFIG"
              --steps "$TOTAL" --stop-at "$next" -o "$RUN" --batch-size "$BATCH"
              --crop-size "$CROP" --lr "$LR" --lr-schedule cosine --lr-min "$LR_MIN"
              --warmup "$WARMUP" --ema-decay "$EMA" --ortho-weight "$ORTHO"
              --workers "$WORKERS" --cache-images --no-progress
              --checkpoint-every "$CKPT_EVERY")
        [ -n "$LATE_CROP" ] && args+=(--late-crop-size "$LATE_CROP" --late-batch-size
                                      "$LATE_BATCH" --late-from "$LATE_FROM")
        [ -f "$SHIP" ] && args+=(--init-from "$SHIP")
    fi
    before=$step
    log "training: step $step -> $next of $total"
    run_child "$PY" -m pyg_glic train "${args[@]}"
    [ -n "$stop_sig" ] && { log "trainer exited with status $rc"; stopped; }
    if [ "$rc" -gt 128 ]; then
        log "the trainer was stopped by signal $((rc - 128)) (status $rc); the campaign stops"
        exit "$rc"
    fi
    if [ "$rc" -ne 0 ]; then
        log "error: the trainer failed with status $rc (see $LOG); the campaign stops"
        exit "$rc"
    fi
    if [ -f "$CK" ]; then read_state || die "cannot read $CK (see $LOG)"; fi
    if [ ! -f "$CK" ] || [ "$step" -le "$before" ]; then
        log "error: the trainer exited 0 without progress (step $step); the campaign stops"
        exit 1
    fi
done
