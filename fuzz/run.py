#!/usr/bin/env python3
"""Seeded, deterministic corpus-mutation fuzzer for the whole verify path (no atheris).

    .venv/bin/python fuzz/run.py --seconds 60 --seed 1

Targets: scanned text (``Verifier.verify_text``), a byte stream as piped to
``vaxqr verify -`` (the CLI's line reader, then one verdict per line), and pictures
(``vaxqr.verify.verify_image`` → ``vaxqr.qr.decode_image``). Inputs come from the hand-made
hostile seeds of ``fuzzkit.hostile_seeds`` (valid credentials, zlib bombs, deep CBOR, bad
headers, schema-invalid content under a valid signature, ...) through text, layer and
structure mutations, plus random text, random CBOR signed by the trusted test key, and
damaged pictures. The sequence of inputs depends only on ``--seed``; ``--seconds`` decides
how far along it the run gets (``--max-inputs`` makes the run itself reproducible).

A "crash" is anything but a clean report (see ``fuzzkit.Oracle``): an exception, a report
that fired the verifier's internal-error guard, a VALID verdict on something no trusted
signer made, terminal output with an unescaped control or bidi character, or an input
slower than ``--slow`` seconds. The exit status is 1 when any was found.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # a checkout without ``pip install -e .``

import fuzzkit  # noqa: E402


def _rss_mib() -> float:
    """Peak RSS of this process in MiB. VmHWM belongs to the process's own memory map;
    ru_maxrss would include the parent's size at fork (Linux folds it in at exec), which
    under a large pytest worker says nothing about the fuzzer."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def numbered(seconds: float, max_inputs: int) -> Iterator[int]:
    """Input numbers from 1 while ``seconds`` last (and up to ``max_inputs``; 0: no cap)."""
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline and (not max_inputs or n < max_inputs):
        n += 1
        yield n


def _extra_corpus(paths: list[str]) -> list[str]:
    """HC1 texts from files: lines starting with ``HC1:``, or dgc-testdata JSON ``PREFIX``."""
    out: list[str] = []
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        try:
            data = f.read_text("utf-8", errors="replace")
        except OSError:
            continue
        if f.suffix == ".json":
            try:
                doc = json.loads(data)
            except ValueError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("PREFIX"), str):
                out.append(doc["PREFIX"])
        else:
            out += [ln for ln in data.splitlines() if ln.startswith("HC1:")]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--max-inputs", type=int, default=0, help="stop after N inputs")
    ap.add_argument("--no-images", action="store_true", help="skip the picture target")
    ap.add_argument("--slow", type=float, default=1.0,
                    help="seconds after which one text input counts as a hang (default 1; "
                    "pictures get 10x)")
    ap.add_argument("--corpus", action="append", default=[],
                    help="extra seed files or directories (HC1: lines, dgc-testdata JSON)")
    ap.add_argument("--crash-dir", default=os.path.join(tempfile.gettempdir(),
                                                         "vaxqr-fuzz-crashes"),
                    help="where crashing inputs are saved")
    ap.add_argument("--trace-rss", action="store_true", help="print inputs that raise peak RSS")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    args = ap.parse_args(argv)

    t_setup = time.perf_counter()
    kit = fuzzkit.Kit()
    seeds = fuzzkit.hostile_seeds(kit)
    oracle = fuzzkit.Oracle(kit, seeds, render_every=25)
    texts = [text for _n, text, _s in seeds]
    for i in range(8):  # more valid credentials, varied names and levels
        dcc = fuzzkit.default_dcc(fn=["Nguyễn", "Trần", "Lê", "Phạm"][i % 4],
                                  gn=["Văn An", "Thị Bích Ngọc", "Hoàng", "Minh Đức"][i // 2])
        text = kit.credential(dcc, level=[9, 6, 1, 9][i % 4])
        texts.append(text)
        oracle.valid_triples.add(fuzzkit.signed_triple(text))  # type: ignore[arg-type]
    texts += _extra_corpus(args.corpus)
    image_texts = [t for t in texts if len(t) < 1500]
    images = not args.no_images
    if images:
        try:
            from vaxqr.qr import decode_image  # noqa: F401
        except ImportError:
            images = False
            print("note: vaxqr.qr.decode_image is missing; picture target skipped")
    from vaxqr.citizen import parse_cccd

    holder = parse_cccd(fuzzkit.HOLDER_CARD)
    setup = time.perf_counter() - t_setup
    rss_setup = _rss_mib()

    rng = random.Random(args.seed)
    stats = fuzzkit.Stats()
    per_target = {"text": 0, "stream": 0, "image": 0, "signed-cbor": 0, "random": 0}
    crash_dir = Path(args.crash_dir)
    start = time.perf_counter()
    for n in numbered(args.seconds, args.max_inputs):
        r = rng.random()
        if r < 0.55:
            target = "text"
            text = rng.choice(texts)
            for _ in range(rng.choice([1, 1, 1, 2, 3, 5])):
                text = fuzzkit.mutate_text(text, rng)
            fn, payload, slow = (lambda t=text: oracle.text(t)), text, args.slow
        elif r < 0.65:
            target = "random"
            text = fuzzkit.random_text(rng)
            fn, payload, slow = (lambda t=text: oracle.text(t)), text, args.slow
        elif r < 0.80:
            target = "signed-cbor"  # validly signed, random content: exercises the content steps
            pick = rng.random()
            hcert = (fuzzkit.near_valid_dcc(rng) if pick < 0.5 else fuzzkit.random_dcc(rng)
                     if pick < 0.85 else fuzzkit.random_cbor(rng))
            try:
                claims = fuzzkit.claims_bytes(hcert) if rng.random() < 0.8 else \
                    __import__("cbor2").dumps(fuzzkit.random_cbor(rng))
            except Exception:  # not encodable (e.g. an unhashable key): skip
                continue
            text = fuzzkit.hc1_of(kit.cose(claims))
            genuine = fuzzkit.signed_triple(text)  # the trusted key did sign this one
            card = holder if rng.random() < 0.3 else None
            fn, payload, slow = (lambda t=text, g=genuine, c=card: oracle.text(
                t, genuine=g, holder=c)), text, args.slow
        elif r < 0.95 or not images:
            target = "stream"
            data = fuzzkit.stream_input(rng, texts)
            fn, payload, slow = (lambda d=data: oracle.stream(d)), data, args.slow * 5
        else:
            target = "image"
            data = fuzzkit.image_inputs(rng, image_texts)
            fn, payload, slow = (lambda d=data: oracle.image(d)), data, args.slow * 10
        per_target[target] += 1
        before = len(stats.crashes)
        rss0 = _rss_mib()
        t0 = time.perf_counter()
        fuzzkit.run_one(stats, fn, repr(payload)[:200])
        dt = time.perf_counter() - t0
        if args.trace_rss and _rss_mib() > rss0 + 2:
            print(f"RSS {rss0:.0f} -> {_rss_mib():.0f} MiB on {target} {repr(payload)[:150]}")
        if dt > slow:
            stats.crashes.append((f"SLOW: {dt:.2f} s ({target})", repr(payload)[:200]))
        if len(stats.crashes) > before:
            crash_dir.mkdir(parents=True, exist_ok=True)
            raw = payload if isinstance(payload, bytes) else payload.encode("utf-8",
                                                                            "surrogatepass")
            (crash_dir / f"seed{args.seed}-{n}-{target}.bin").write_bytes(raw)
    stats.seconds = time.perf_counter() - start
    peak = _rss_mib()

    print(f"vaxqr fuzz/run.py: seed {args.seed}, {args.seconds:g} s budget, "
          f"setup {setup:.1f} s ({len(seeds)} hand-made seeds, {len(texts)} texts)")
    for line in stats.lines():
        if not line.startswith("peak memory"):
            print(line)
    print("inputs by target:  " + ", ".join(f"{k} {v:,}" for k, v in per_target.items()))
    print(f"valid re-encodings of a valid seed (fine): {oracle.equivalent}")
    for bug, count in oracle.known.items():
        print(f"known bug elsewhere, not counted as a crash ({count}x): {bug}")
    print(f"peak RSS:          {peak:.0f} MiB (after setup {rss_setup:.0f} MiB)")
    if stats.crashes:
        print(f"crashing inputs saved in {crash_dir}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "seed": args.seed, "seconds": stats.seconds, "inputs": stats.inputs,
            "verifications": stats.valid + sum(stats.failed_steps.values()),
            "valid": stats.valid, "failed_steps": dict(stats.failed_steps),
            "crashes": [list(c) for c in stats.crashes], "per_target": per_target,
            "max_seconds": stats.max_seconds, "slowest": stats.slowest,
            "peak_rss_mib": peak, "rss_after_setup_mib": rss_setup,
            "equivalent_encodings": oracle.equivalent, "known_bugs": dict(oracle.known),
        }, indent=2))
    return 1 if stats.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
