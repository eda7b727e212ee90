"""Run every benchmark and print the goals of issue #7 with this run's ratios.

    .venv/bin/python benchmarks/run_all.py [--quick]     (``make bench`` runs it)

The machines are shared and noisy: each ratio is measured against its limit in the same
run (bare ECDSA, bare Python, the QR encoder alone), which is what the goals are about.
``--quick`` shrinks every benchmark (a smoke test, not figures to quote).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_issue
import bench_sign
import bench_verify


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--rows", type=int, default=None, help="rows of the memory batch "
                    "(default 100,000; 5,000 with --quick)")
    args = ap.parse_args()
    started = time.perf_counter()
    load = os.getloadavg()[0]
    print(f"vaxqr benchmarks — {os.cpu_count()} cores, load average {load:.2f} at start"
          + ("  (busy machine: ratios against work done in parallel suffer most)"
             if load > 1.0 else ""))
    import vaxqr

    compiled = vaxqr.native_modules()
    build = "compiled with mypyc: " + ", ".join(compiled) if compiled else "pure Python"
    print(f"vaxqr build: {build} (state {vaxqr.NATIVE_STATE}; VAXQR_PURE=1 to compare)")
    q = args.quick
    sections = [
        ("verify", bench_verify.main,
         ["--items", "60", "--rounds", "5", "--runs", "10", "--lines", "300"] if q else []),
        ("sign", bench_sign.main, ["--items", "60", "--rounds", "5"] if q else []),
        ("issue", bench_issue.main,
         ["--batch", "1000", "--rows", str(args.rows or 5000)] if q
         else ([] if args.rows is None else ["--rows", str(args.rows)])),
    ]
    results: dict[str, float | None] = {}
    for name, fn, argv in sections:
        print(f"\n{'=' * 30} bench_{name}.py {' '.join(argv)}\n")
        results.update(fn(argv))

    goals = [
        ("stream verify / bare ECDSA verify", "stream_verify", 1.3, True),
        ("  the same, pure Python (info)", "stream_verify_pure", 1.3, True),
        ("  the same, `verify -` process, human", "cli_stream_human", 1.3, True),
        ("  the same, `verify -` process, --json", "cli_stream_json", 1.3, True),
        ("one-shot verify / python -c pass", "oneshot_verify", 10.0, True),
        ("verify from clean PNG / decoder alone", "png_verify", 1.5, True),
        ("sign DCC to HC1 / bare ECDSA sign", "sign", 2.5, True),
        ("sign_record (record to HC1) / bare sign", "sign_record", 2.5, True),
        ("batch issue / one-core sign+QR rate", "issue", 1.8, False),
        ("memory: last fifth / second fifth peak", "memory_growth", 1.1, True),
    ]
    print(f"\n{'=' * 30} summary ({time.perf_counter() - started:.0f} s)\n")
    if q:
        print("--quick: a smoke test; sizes this small make the ratios noise (the `verify -`\n"
              "process rows worst of all), so quote only a run without --quick\n")
    print(f"{'goal':42} {'ratio':>8}  {'target':>8}")
    for label, key, target, at_most in goals:
        value = results.get(key)
        if value is None:
            print(f"{label:42} {'skipped':>8}")
            continue
        ok = value <= target if at_most else value >= target
        sign = "≤" if at_most else "≥"
        print(f"{label:42} {value:7.2f}×  {sign} {target:<5g}  {'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
    main()
