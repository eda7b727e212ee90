"""Printable cards: CPU time per card, and a batch with cards against the same batch without.

    .venv/bin/python benchmarks/bench_cards.py [--cards 60] [--batch 1000] [--workers 2]
        [--tmp DIR]

1. ``issue.render_card`` (what a batch runs per citizen: the credential decoded, the card
   laid out, painted and encoded), PNG and PDF, over ``--cards`` distinct credentials:
   CPU time per card (``time.process_time``, median of 3 rounds; the machines are shared,
   so CPU time rather than wall time) and the cards per second one core would give.
2. ``issue_batch`` of ``--batch`` rows, ``--workers`` processes, with ``--card png`` and
   without, alternated twice (the second pair in the other order): wall time, credentials
   per second, the CPU of all processes per credential (and the share of it the forked
   renderers did: cards are rendered in every process), and the ratios with cards /
   without. Wall times need an idle machine; CPU times hold on a busy one.
   Write ``--tmp`` on tmpfs (/dev/shm) to leave the disk out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _common import credentials, load_demo_signer
from bench_issue import write_rows


def per_card(n: int) -> None:
    from vaxqr import issue

    info = issue.signer_info(load_demo_signer())
    rounds = [credentials(n, seed=31 + r) for r in range(3)]
    print(f"1. issue.render_card, {n} distinct credentials, CPU time (median of 3 rounds)")
    for fmt in ("png", "pdf"):
        issue.render_card(rounds[0][0], info, fmt)  # fonts, fixed text, the shared head
        times = []
        for texts in rounds:
            t = time.process_time()
            for hc1 in texts:
                issue.render_card(hc1, info, fmt)
            times.append((time.process_time() - t) / n)
        per = statistics.median(times)
        size = len(issue.render_card(rounds[0][0], info, fmt)) / 1000
        each = ", ".join(f"{x * 1000:.2f}" for x in times)
        print(f"   {fmt}: {per * 1000:6.2f} ms a card (rounds {each}) → {1 / per:5.0f} cards/s "
              f"on one core, {size:.0f} kB")


def batch(rows: int, workers: int, base: Path) -> None:
    from vaxqr import issue

    signer = load_demo_signer()
    src = write_rows(base / "records.csv", rows)
    runs: dict[str, list[tuple[float, float, float]]] = {"none": [], "png": []}
    for i, card in enumerate(("none", "png", "png", "none")):
        out = Path(tempfile.mkdtemp(prefix=f"batch-{card}-", dir=base))
        c0, t = os.times(), time.perf_counter()
        result = issue.issue_batch(signer, src, out / "out", workers=workers,
                                   card=None if card == "none" else card,
                                   register=out / f"office-{i}.sqlite")
        wall, c1 = time.perf_counter() - t, os.times()
        assert result.issued == rows and not result.rejected, result
        here, others = (sum(c1[k] - c0[k] for k in ks) for ks in ((0, 1), (2, 3)))
        runs[card].append((wall, here + others, others / (here + others)))
    print(f"\n2. issue_batch, {rows:,} rows, {workers} processes (load average "
          f"{os.getloadavg()[0]:.1f})")
    best = {}
    for card, label in (("none", "QR PNGs only"), ("png", "QR PNGs + cards (--card png)")):
        walls = [w for w, _, _ in runs[card]]
        cpus = [c for _, c, _ in runs[card]]
        share = [f"{100 * s:.0f}%" for _, _, s in runs[card]]
        best[card] = min(walls)
        print(f"   {label:30} wall {', '.join(f'{w:.2f}' for w in walls)} s → "
              f"{rows / min(walls):7,.0f}/s; CPU {min(cpus) / rows * 1000:.3f} ms a credential "
              f"(the forked renderers' share: {', '.join(share)})")
    cpu = {k: min(c for _, c, _ in v) for k, v in runs.items()}
    print(f"   CPU of the batch with cards / without: {cpu['png'] / cpu['none']:.1f}×; "
          f"the cards' own: {(cpu['png'] - cpu['none']) / rows * 1000:.2f} ms a card")
    per = best["png"] / rows
    print(f"   with cards: {per * 1000:.2f} ms a card → {1 / per:,.0f} cards/s "
          f"(100,000 cards in {100_000 * per / 60:.1f} min); "
          f"batch with cards / without: {best['png'] / best['none']:.1f}× the time")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cards", type=int, default=60)
    ap.add_argument("--batch", type=int, default=1000, help="rows of each batch (0: skip)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tmp", type=Path, default=Path("/dev/shm"))
    args = ap.parse_args()
    per_card(args.cards)
    if args.batch:
        base = Path(tempfile.mkdtemp(prefix="vaxqr-cards-", dir=args.tmp))
        try:
            batch(args.batch, args.workers, base)
        finally:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
