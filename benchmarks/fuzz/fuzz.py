r"""Fuzzing the decoder: every malformed ``.glic`` file must end in ``BitstreamError``.

Seeded cases, each a mutation of a real file (``glic-tiny+untrained`` coding a 48x40
crop of the bundled Kodak image, version 2; and the same content as a version-1 file),
of these kinds:

- ``random``: random bytes (random length, sometimes with the real magic and version);
- ``truncate``: the file cut at a length (every length, cycled);
- ``bitflip``: 1-8 random bits flipped (the checksum then fails: the parser's path);
- ``header``: one header field set to a random or boundary value, checksum recomputed
  (the decoder's checks after the CRC: name, quality, size, tiles, counts);
- ``payload``: bytes of the entropy-coded strings replaced, checksum recomputed (the
  model decodes garbage: must give an image or a ``BitstreamError``, never a crash);
- ``strings``: string count and lengths rewritten (inconsistent framing), checksum
  recomputed.

Each case runs :func:`pyg_glic.codec.decompress` (with the codec loaded once and passed
in, except for a sample that loads it from the name the file carries, as the CLI does)
under a 5 s alarm. A **crash** is any exception other than ``BitstreamError``; a **hang**
a case over 5 s. ``--cli N`` also runs N cases through ``pyg-glic decompress`` in
subprocesses (exit 2 with one line, no output file). Writes ``fuzz_<n>.json`` and a
table ``fuzz_<n>.md`` (counts per kind, crashes with their seeds, slowest cases, peak
resident memory of the process).

    python benchmarks/fuzz/fuzz.py --cases 10000            # the committed run
    python benchmarks/fuzz/fuzz.py --cases 200 --out /tmp/f # quick
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter, defaultdict
from typing import Callable, Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks._common import machine_info  # noqa: E402

KINDS = ("random", "truncate", "bitflip", "header", "payload", "strings")
HANG_S = 5.0


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def base_files() -> Tuple[Dict[str, bytes], object]:
    r"""``({"v2": bytes, "v1": bytes}, model)``: a real file of each version."""
    import numpy as np
    import torch
    from PIL import Image

    from pyg_glic import bitstream, codec, zoo

    asset = os.path.join(ROOT, "pyg_glic", "assets", "kodim23.png")
    rgb = np.asarray(Image.open(asset).convert("RGB"))[200:240, 300:348]
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
    net = zoo.load_codec(zoo.codec_name("glic-tiny"), 3.0)
    v2 = codec.compress(x, "glic-tiny", 3.0, model=net)
    bs = bitstream.decode(v2)
    name = bs.config.encode()
    parts = [b"GLIC", struct.pack("<BB", 1, len(name)), name,
             struct.pack("<BIIB", 3, bs.height, bs.width, len(bs.strings))]
    for s in bs.strings:
        parts += [struct.pack("<I", len(s)), s]
    body = b"".join(parts)
    v1 = body + struct.pack("<I", zlib.crc32(body))
    return {"v2": v2, "v1": v1}, net


def _recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _v2_layout(data: bytes) -> Dict[str, Tuple[int, int]]:
    L = data[5]
    o = 6 + L
    return {"version": (4, 1), "name_len": (5, 1), "name": (6, L), "quality": (o, 2),
            "fingerprint": (o + 2, 8), "height": (o + 10, 4), "width": (o + 14, 4),
            "tile_h": (o + 18, 2), "tile_w": (o + 20, 2), "count": (o + 22, 2)}


def _v1_layout(data: bytes) -> Dict[str, Tuple[int, int]]:
    L = data[5]
    o = 6 + L
    return {"version": (4, 1), "name_len": (5, 1), "name": (6, L), "quality": (o, 1),
            "height": (o + 1, 4), "width": (o + 5, 4), "count": (o + 9, 1)}


def _strings_start(data: bytes) -> int:
    L = data[5]
    return 6 + L + (24 if data[4] == 2 else 10)


def mutate(kind: str, rng: random.Random, files: Dict[str, bytes]) -> bytes:
    version = rng.choice(("v2", "v2", "v1"))
    data = files[version]
    body = data[:-4]
    if kind == "random":
        n = rng.choice((0, 1, 3, 4, 5, 8, 16, 64, rng.randrange(0, 4096)))
        out = bytes(rng.getrandbits(8) for _ in range(n))
        if rng.random() < 0.5 and n >= 5:
            out = b"GLIC" + bytes([rng.choice((1, 2))]) + out[5:]
        if rng.random() < 0.3:
            out = _recrc(out)
        return out
    if kind == "truncate":
        return data[:rng.randrange(0, len(data))]
    if kind == "bitflip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == "header":
        layout = _v2_layout(data) if version == "v2" else _v1_layout(data)
        field = rng.choice(sorted(layout))
        off, size = layout[field]
        b = bytearray(body)
        if size:
            top = (1 << (8 * size)) - 1
            value = rng.choice((0, 1, 2, 7, top, top - 1, rng.randrange(top + 1)))
            b[off:off + size] = value.to_bytes(size, "little")
        if field == "name" and rng.random() < 0.5:  # another (maybe unknown) name
            new = rng.choice((b"glic", b"glic-lite", b"glic-tiny", b"\xff\xfe", b"x" * 40))
            b[5] = len(new)
            b[6:6 + data[5]] = new
        return _recrc(bytes(b))
    if kind == "payload":
        start = _strings_start(data)
        b = bytearray(body)
        # string bodies only (skip the 4-byte length fields by re-walking the framing)
        spans, pos = [], start
        while pos + 4 <= len(b):
            (n,) = struct.unpack("<I", bytes(b[pos:pos + 4]))
            if pos + 4 + n > len(b):
                break
            if n:
                spans.append((pos + 4, pos + 4 + n))
            pos += 4 + n
        if spans:
            for _ in range(rng.randint(1, 16)):
                s0, s1 = rng.choice(spans)
                i = rng.randrange(s0, s1)
                b[i] = rng.getrandbits(8)
        if rng.random() < 0.2 and spans:  # a whole string random
            s0, s1 = rng.choice(spans)
            b[s0:s1] = bytes(rng.getrandbits(8) for _ in range(s1 - s0))
        return _recrc(bytes(b))
    if kind == "strings":
        start = _strings_start(data)
        b = bytearray(body)
        layout = _v2_layout(data) if version == "v2" else _v1_layout(data)
        off, size = layout["count"]
        if rng.random() < 0.5:
            count = int.from_bytes(b[off:off + size], "little")
            new = max(0, min((1 << (8 * size)) - 1, count + rng.choice((-2, -1, 1, 2, 100))))
            b[off:off + size] = new.to_bytes(size, "little")
        else:
            pos = start
            (n,) = struct.unpack("<I", bytes(b[pos:pos + 4]))
            b[pos:pos + 4] = struct.pack("<I", rng.choice((0, n + 1, max(0, n - 1),
                                                           0xFFFFFFFF, len(b))))
        return _recrc(bytes(b))
    raise ValueError(kind)


def run_case(data: bytes, decode: Callable[[bytes], object]) -> Tuple[str, float, str]:
    from pyg_glic.bitstream import BitstreamError

    t0 = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        decode(data)
        outcome, detail = "decoded", ""
    except BitstreamError as e:
        outcome, detail = "refused", str(e).split(":")[0][:60]
    except _Timeout:
        outcome, detail = "hang", f"over {HANG_S} s"
    except Exception as e:  # noqa: BLE001 - what a fuzzer is for
        outcome = "crash"
        detail = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''} | " \
                 + traceback.format_exc().strip().splitlines()[-3][:160]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return outcome, time.perf_counter() - t0, detail


def run(cases: int, seed: int, cli: int, sample_named: int, out: str) -> Dict:
    import torch

    from pyg_glic import codec

    torch.set_num_threads(1)
    signal.signal(signal.SIGALRM, _alarm)
    files, net = base_files()
    with_model = lambda d: codec.decompress(d, model=net)  # noqa: E731
    named = lambda d: codec.decompress(d)  # noqa: E731
    counts: Dict[str, Counter] = defaultdict(Counter)
    crashes, slow = [], []
    t_start = time.perf_counter()
    for i in range(cases):
        kind = KINDS[i % len(KINDS)]
        rng = random.Random(seed * 1_000_003 + i)
        data = mutate(kind, rng, files)
        fn = named if (sample_named and i % max(1, cases // sample_named) == 0) else with_model
        outcome, dt, detail = run_case(data, fn)
        counts[kind][outcome] += 1
        if outcome in ("crash", "hang"):
            crashes.append({"case": i, "kind": kind, "seed": seed, "outcome": outcome,
                            "detail": detail, "bytes": len(data)})
        slow.append((dt, i, kind, outcome))
    slow.sort(reverse=True)
    cli_rows = run_cli(cli, seed, files) if cli else []
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"machine": machine_info(torch.device("cpu"), ("pyg_glic", "benchmarks/fuzz")),
            "cases": cases, "seed": seed, "hang_seconds": HANG_S,
            "base_bytes": {k: len(v) for k, v in files.items()},
            "counts": {k: dict(v) for k, v in counts.items()},
            "crashes": crashes, "hangs": [c for c in crashes if c["outcome"] == "hang"],
            "slowest": [{"seconds": round(d, 3), "case": i, "kind": k, "outcome": o}
                        for d, i, k, o in slow[:10]],
            "peak_rss_mib": round(peak_mib, 1), "cli": cli_rows,
            "seconds": round(time.perf_counter() - t_start, 1)}


def run_cli(n: int, seed: int, files: Dict[str, bytes]) -> List[Dict]:
    rows = []
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        for j in range(n):
            kind = KINDS[j % len(KINDS)]
            data = mutate(kind, random.Random(seed * 7_919 + j), files)
            src, dst = os.path.join(tmp, f"{j}.glic"), os.path.join(tmp, f"{j}.png")
            with open(src, "wb") as f:
                f.write(data)
            p = subprocess.run([sys.executable, "-m", "pyg_glic", "decompress", src, dst],
                               capture_output=True, text=True, timeout=120, env=env)
            err = [x for x in p.stderr.splitlines() if x.strip() and "Warning" not in x
                   and "warnings.warn" not in x]
            ok = (p.returncode == 0 and os.path.isfile(dst)) or \
                 (p.returncode == 2 and len(err) == 1 and err[0].startswith("error:")
                  and not os.path.exists(dst))
            rows.append({"case": j, "kind": kind, "returncode": p.returncode, "ok": ok,
                         "stderr": err[-1][:200] if err else ""})
    return rows


def to_markdown(r: Dict) -> str:
    m = r["machine"]
    lines = [f"# Decoder fuzzing: {r['cases']} seeded cases (seed {r['seed']})", "",
             f"Machine: {m['platform']}, {m['cpu_count']} CPUs, torch {m['torch']}, device cpu, "
             f"1 thread, {m['date']}, commit {m['git_commit']}. Base files: "
             f"{r['base_bytes']} bytes (glic-tiny+untrained, 48x40). {r['seconds']} s in all.",
             "", "| kind | refused (BitstreamError) | decoded | crash | hang |",
             "|---|---|---|---|---|"]
    for k in KINDS:
        c = r["counts"].get(k, {})
        lines.append(f"| {k} | {c.get('refused', 0)} | {c.get('decoded', 0)} | "
                     f"{c.get('crash', 0)} | {c.get('hang', 0)} |")
    tot = Counter()
    for c in r["counts"].values():
        tot.update(c)
    lines.append(f"| **all** | {tot['refused']} | {tot['decoded']} | **{tot['crash']}** | "
                 f"**{tot['hang']}** |")
    lines += ["", f"Peak resident memory of the process: {r['peak_rss_mib']} MiB. Slowest case: "
              f"{r['slowest'][0]['seconds']} s ({r['slowest'][0]['kind']})." if r["slowest"]
              else ""]
    if r["crashes"]:
        lines += ["", "## Crashes and hangs", "", "| case | kind | outcome | detail |",
                  "|---|---|---|---|"]
        for c in r["crashes"][:50]:
            lines.append(f"| {c['case']} | {c['kind']} | {c['outcome']} | "
                         f"`{c['detail'].replace('|', '/')}` |")
    if r["cli"]:
        bad = [c for c in r["cli"] if not c["ok"]]
        lines += ["", f"Command line: {len(r['cli'])} cases through `pyg-glic decompress`; "
                  f"{len(r['cli']) - len(bad)} ended as they should (exit 2 with one `error:` "
                  f"line and no output file, or a decoded image), {len(bad)} did not."]
        for c in bad[:20]:
            lines.append(f"- case {c['case']} ({c['kind']}): exit {c['returncode']}: "
                         f"`{c['stderr']}`")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cli", type=int, default=30, help="cases run through the CLI too")
    ap.add_argument("--sample-named", type=int, default=50,
                    help="cases that load the codec from the file's name (slow)")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = ap.parse_args(argv)
    if args.cases < 1:
        print(f"error: --cases must be at least 1, got {args.cases}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    r = run(args.cases, args.seed, args.cli, args.sample_named, args.out)
    stem = os.path.join(args.out, f"fuzz_{args.cases}")
    with open(stem + ".json", "w") as f:
        json.dump(r, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write(to_markdown(r))
    tot = Counter()
    for c in r["counts"].values():
        tot.update(c)
    print(f"{args.cases} cases: {dict(tot)}; peak {r['peak_rss_mib']} MiB; wrote {stem}.{{json,md}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
