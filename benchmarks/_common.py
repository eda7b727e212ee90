"""Shared set-up for the benchmarks: the demo signer, credentials, timing helpers.

The machines are shared and noisy, so every benchmark measures its reference (bare ECDSA,
bare Python, the QR encoder alone) in the same run, interleaved with the thing measured,
and prints ratios; absolute times are printed for information only.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

SIGNER_DIR = ROOT / "keys" / "examples" / "communes" / "31078"
DSC = SIGNER_DIR / "signer.crt"
PASSWORD = b"vaxqr-demo"
PYTHON = sys.executable


def load_demo_signer() -> Any:
    from vaxqr.certs import load_signer

    return load_signer(SIGNER_DIR, PASSWORD)


def trust_store() -> Any:
    try:
        from vaxqr.trust import TrustStore
    except ImportError:  # before the certs split
        from vaxqr.certs import TrustStore  # type: ignore[attr-defined,no-redef]
    state = Path(os.environ.get("TMPDIR", "/tmp")) / f"vaxqr-bench-state-{os.getpid()}.json"
    return TrustStore.from_paths([DSC], at=datetime.now(UTC), state_file=state)


def records(n: int, seed: int = 7) -> list[Any]:
    """``n`` validated records from the synthetic CSV generator of the tests."""
    from vaxqr.issue import COLUMNS, parse_record

    from records import record

    rng = random.Random(seed)
    today = datetime.now(UTC).date()
    return [parse_record(i + 1, dict(zip(COLUMNS, record(rng), strict=True)), today=today)
            for i in range(n)]


def credentials(n: int, seed: int = 7) -> list[str]:
    """``n`` distinct ``HC1:`` credentials signed by the demo signer."""
    from vaxqr.credential import make_uvci
    from vaxqr.issue import sign_record, signer_info

    info = signer_info(load_demo_signer())
    return [sign_record(info, r, make_uvci(info.province_code, info.commune_code))[0]
            for r in records(n, seed)]


def cpu_per_item(fn: Callable[[Any], object], items: Sequence[Any]) -> float:
    """CPU seconds per item of ``fn`` over ``items`` (time.process_time)."""
    t = time.process_time()
    for item in items:
        fn(item)
    return (time.process_time() - t) / len(items)


def interleaved(pairs: dict[str, tuple[Callable[[Any], object], Sequence[Any]]],
                rounds: int) -> dict[str, list[float]]:
    """Per-item CPU time of each function, measured in alternating rounds."""
    out: dict[str, list[float]] = {name: [] for name in pairs}
    for fn, items in pairs.values():  # warm-up
        cpu_per_item(fn, items[: max(1, len(items) // 10)])
    for _ in range(rounds):
        for name, (fn, items) in pairs.items():
            out[name].append(cpu_per_item(fn, items))
    return out


def ratio_of_medians(num: Sequence[float], den: Sequence[float]) -> float:
    """Median of the per-round ratios (each round measured both under the same load)."""
    return statistics.median(n / d for n, d in zip(num, den, strict=True))


def us(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f} µs"


def verdict(ratio: float, goal: float, *, at_most: bool = True) -> str:
    ok = ratio <= goal if at_most else ratio >= goal
    sign = "≤" if at_most else "≥"
    return f"{'PASS' if ok else 'MISS'} (goal {sign} {goal:g}×)"
