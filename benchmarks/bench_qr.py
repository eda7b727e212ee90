"""QR benchmark: encoders, clean decoding, and the degraded-photo corpus.

    .venv/bin/python benchmarks/bench_qr.py [--per-kind 30] [--seed 2021] [--repeat 200]
    .venv/bin/python benchmarks/bench_qr.py --encoder-only [--against OLD/vaxqr/qrencode.py]

Prints four tables, each with ratios to the bare library measured in the same run (the
machines are shared and noisy, so absolute times mislead):

0. The encoder alone: best-of-N CPU time per credential over a few hundred distinct
   demo-signed ``HC1:`` payloads for ``to_png``, ``encode_matrix``, the PNG writer and
   the mask scoring; with ``--against``, an older ``qrencode.py`` is loaded beside this
   one and measured in alternating rounds, with its ratio and a check of identical output.
1. Encoding one credential-sized payload (~560 characters, ``HC1:`` + Base45) to a PNG, for
   vaxqr's encoder, zxing-cpp's writer, segno and qrcode (when installed), and whether each
   produced what the spec asks: one alphanumeric segment at exactly level Q.
2. Decoding a clean generated PNG: zxing-cpp alone, zbar (pyzbar) alone, ``decode_image``.
3. The seeded degraded corpus of ``tests/degrade.py``: read rate per kind of degradation for
   zxing-cpp alone, plain pyzbar, and ``decode_image``, with median/p90 time per image.
4. Printable cards (``--cards N``, also alone with ``--cards-only``): CPU time per card for
   composing it and for encoding it (vaxqr's raster writer against Pillow's PNG writer on
   the same picture), the whole ``issue.render_card`` as PNG and PDF, and the sizes.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import segno
import zxingcpp
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from test_qr import inspect_symbol, mask_candidates  # noqa: E402

from vaxqr import qr, qrencode  # noqa: E402
from vaxqr.errors import DecodeError  # noqa: E402

import degrade  # noqa: E402

QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


def timeit(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of ``fn`` in milliseconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def png_of(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def conformance(modules: np.ndarray, payload: str) -> str:
    info = inspect_symbol(modules)
    segs = info["segments"]
    ok = segs == [("alphanumeric", len(payload))] and info["ec"] == "Q"
    return "yes" if ok else f"NO: {info['ec']} {'+'.join(f'{m}:{n}' for m, n in segs)}"


# --- 0. the encoder alone, per credential ---------------------------------------------------


def load_encoder(path: Path) -> ModuleType:
    """Another ``qrencode.py`` (e.g. ``git show OLD:vaxqr/qrencode.py > /tmp/old.py``),
    imported beside this tree's as ``vaxqr._qrencode_against``."""
    spec = importlib.util.spec_from_file_location("vaxqr._qrencode_against", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def cpu_us(fn: Callable[[Any], object], items: list[Any]) -> float:
    t = time.process_time()
    for item in items:
        fn(item)
    return 1e6 * (time.process_time() - t) / len(items)


def bench_encoder(n: int, rounds: int, against: Path | None) -> None:
    import _common

    payloads = _common.credentials(n)
    encoders = {"this tree": qrencode}
    same = True
    if against is not None:
        encoders["against"] = load_encoder(against)
        other = encoders["against"]
        same = all(
            qrencode.to_png(p) == other.to_png(p)
            and qrencode.encode_matrix(p).mask == other.encode_matrix(p).mask
            for p in payloads
        )
    matrices = {k: [e.encode_matrix(p) for p in payloads] for k, e in encoders.items()}
    candidates = [mask_candidates(m) for m in matrices["this tree"][:100]]
    cases: dict[str, Callable[[ModuleType, str], tuple[Callable[[Any], object], list[Any]]]] = {
        "to_png(hc1)": lambda e, k: (e.to_png, payloads),
        "encode_matrix(hc1)": lambda e, k: (e.encode_matrix, payloads),
        "QrMatrix.to_png()": lambda e, k: (lambda m: m.to_png(), matrices[k]),
        "_penalties(8 arrays)": lambda e, k: (e._penalties, candidates),
    }
    best: dict[tuple[str, str], float] = {}
    ratios: dict[str, list[float]] = {c: [] for c in cases}
    for _ in range(rounds):
        for case, make in cases.items():
            got = {k: cpu_us(*make(e, k)) for k, e in encoders.items()}
            for k, t in got.items():
                best[case, k] = min(best.get((case, k), t), t)
            if against is not None:
                ratios[case].append(got["against"] / got["this tree"])
    versions = Counter(m.version for m in matrices["this tree"])
    print(f"\n0. The encoder alone: {n} distinct credentials (versions {dict(versions)}), "
          f"best of {rounds} rounds, CPU µs per call")  # fmt: skip
    head = f"{'':22} {'this tree':>10}"
    if against is not None:
        head += f" {'against':>10} {'speed-up':>9}"
    print(head)
    for case in cases:
        row = f"{case:22} {best[case, 'this tree']:10.1f}"
        if against is not None:
            row += f" {best[case, 'against']:10.1f} {statistics.median(ratios[case]):8.2f}x"
        print(row)
    if against is not None:
        print(f"(speed-up: median per-round ratio; identical PNG bytes and masks: {same})")
    print("(_penalties scores 8 candidate arrays; encode_matrix scores packed ints directly)")


# --- 1. encoding ---------------------------------------------------------------------------


def bench_encode(payload: str, digits_payload: str, repeat: int) -> None:
    rows: list[tuple[str, float, float, str]] = []

    m = qr.encode_matrix(payload)
    rows.append(
        (
            "vaxqr (NumPy encoder)",
            timeit(lambda: qr.encode_matrix(payload), repeat),
            timeit(lambda: qr.to_png(payload), repeat),
            conformance(qr.encode_matrix(digits_payload).modules, digits_payload),
        )
    )

    def zx_matrix(text: str) -> np.ndarray:
        bc = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="Q")
        return np.asarray(bc.to_image(scale=1, add_quiet_zones=False)) == 0

    def zx_png() -> bytes:
        bc = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode, ec_level="Q")
        return png_of(Image.fromarray(np.asarray(bc.to_image(scale=4, add_quiet_zones=True))))

    rows.append(
        (
            "zxing-cpp create_barcode",
            timeit(lambda: zx_matrix(payload), repeat),
            timeit(zx_png, repeat),
            conformance(zx_matrix(digits_payload), digits_payload),
        )
    )

    def sg(text: str) -> segno.QRCode:
        return segno.make(text, error="q", mode="alphanumeric", micro=False, boost_error=False)

    def sg_png() -> bytes:
        buf = io.BytesIO()
        sg(payload).save(buf, kind="png", scale=4, border=4)
        return buf.getvalue()

    few = max(5, repeat // 10)
    rows.append(
        (
            "segno",
            timeit(lambda: sg(payload), few),
            timeit(sg_png, few),
            conformance(np.array(sg(digits_payload).matrix, dtype=bool), digits_payload),
        )
    )

    try:
        import qrcode  # type: ignore[import-untyped]
        import qrcode.util  # type: ignore[import-untyped]
    except ImportError:
        qrcode = None
    if qrcode is not None:

        def qc(text: str) -> Any:
            code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_Q, border=4)
            code.add_data(qrcode.util.QRData(text, mode=qrcode.util.MODE_ALPHA_NUM))
            code.make(fit=True)
            return code

        def qc_png() -> bytes:
            code = qc(payload)
            code.box_size = 4
            buf = io.BytesIO()
            code.make_image().save(buf)
            return buf.getvalue()

        rows.append(
            (
                "qrcode",
                timeit(lambda: qc(payload), few),
                timeit(qc_png, few),
                conformance(np.array(qc(digits_payload).modules, dtype=bool), digits_payload),
            )
        )
    else:
        print("(qrcode is not installed: skipped)")

    fastest_lib = rows[1][2]
    print(f"\n1. Encoding a {len(payload)}-character HC1 payload (version {m.version}-Q)")
    print(f"{'encoder':26} {'matrix ms':>10} {'PNG ms':>8} {'x zxing':>8}  one alnum segment, Q")
    for name, t_matrix, t_png, ok in rows:
        print(f"{name:26} {t_matrix:10.3f} {t_png:8.3f} {t_png / fastest_lib:8.2f}  {ok}")
    print("(conformance checked on a payload with a 100-digit run; x zxing = PNG time ratio)")


# --- 2. clean decoding ---------------------------------------------------------------------


def bench_clean(payload: str, repeat: int) -> None:
    png = qr.to_png(payload)
    gray = np.asarray(Image.open(io.BytesIO(png)).convert("L"))

    def zx_load() -> Any:
        return zxingcpp.read_barcodes(
            np.asarray(Image.open(io.BytesIO(png)).convert("L")), formats=QR_ONLY
        )

    t_zx = timeit(lambda: zxingcpp.read_barcodes(gray, formats=QR_ONLY), repeat)
    t_zx_load = timeit(zx_load, repeat)
    t_ours = timeit(lambda: qr.decode_image(png), repeat)
    print(f"\n2. Decoding a clean {gray.shape[1]}x{gray.shape[0]} PNG (4 px/module)")
    print(f"{'decoder':44} {'ms':>8} {'x zxing':>8}")
    print(f"{'zxing-cpp read_barcodes (pixels in memory)':44} {t_zx:8.3f} {1:8.2f}")
    print(f"{'zxing-cpp incl. PNG load + grayscale':44} {t_zx_load:8.3f} {t_zx_load / t_zx:8.2f}")
    if qr.zbar_available():
        from pyzbar.pyzbar import ZBarSymbol
        from pyzbar.pyzbar import decode as zbar_decode

        t_zb = timeit(lambda: zbar_decode(gray, symbols=[ZBarSymbol.QRCODE]), repeat)
        print(f"{'pyzbar decode (pixels in memory)':44} {t_zb:8.3f} {t_zb / t_zx:8.2f}")
    print(f"{'vaxqr decode_image(PNG bytes)':44} {t_ours:8.3f} {t_ours / t_zx:8.2f}")
    print(f"(vaxqr / zxing incl. load = {t_ours / t_zx_load:.2f})")


# --- 3. degraded corpus --------------------------------------------------------------------


def bench_corpus(per_kind: int, seed: int) -> None:
    kinds = list(degrade.KINDS)
    names = ["zxing-cpp alone", "pyzbar alone", "vaxqr decode_image"]
    reads: dict[str, dict[str, list[bool]]] = {n: {k: [] for k in kinds} for n in names}
    times: dict[str, list[float]] = {n: [] for n in names}
    have_zbar = qr.zbar_available()
    if have_zbar:
        from pyzbar.pyzbar import ZBarSymbol
        from pyzbar.pyzbar import decode as zbar_decode

    for kind, _i, img, expected in degrade.corpus(per_kind, seed=seed):
        want = {e.encode("utf-8") for e in expected}
        gray = np.asarray(img.convert("L"))

        t = time.perf_counter()
        got = {b.bytes for b in zxingcpp.read_barcodes(gray, formats=QR_ONLY)}
        times[names[0]].append(time.perf_counter() - t)
        reads[names[0]][kind].append(want <= got)

        if have_zbar:
            t = time.perf_counter()
            got = {d.data for d in zbar_decode(gray, symbols=[ZBarSymbol.QRCODE])}
            times[names[1]].append(time.perf_counter() - t)
            reads[names[1]][kind].append(want <= got)

        t = time.perf_counter()
        try:
            got = {r.raw for r in qr.decode_image(img)}
        except DecodeError:
            got = set()
        times[names[2]].append(time.perf_counter() - t)
        reads[names[2]][kind].append(want <= got)

    shown = [n for n in names if times[n]]
    print(f"\n3. Degraded corpus: {per_kind} images per kind, seed {seed} (tests/degrade.py)")
    print(f"{'kind':14}" + "".join(f"{n:>20}" for n in shown))
    for kind in kinds:
        cells = "".join(f"{100 * np.mean(reads[n][kind]):19.1f}%" for n in shown)
        print(f"{kind:14}{cells}")
    overall = {n: np.mean([ok for k in kinds for ok in reads[n][k]]) for n in shown}
    print(f"{'overall':14}" + "".join(f"{100 * overall[n]:19.1f}%" for n in shown))
    med = {n: 1000 * float(np.median(times[n])) for n in shown}
    p90 = {n: 1000 * float(np.percentile(times[n], 90)) for n in shown}
    print(f"{'median ms':14}" + "".join(f"{med[n]:20.2f}" for n in shown))
    print(f"{'p90 ms':14}" + "".join(f"{p90[n]:20.2f}" for n in shown))
    base = names[0]
    print(
        f"vaxqr / zxing alone: read rate {overall[names[2]] / overall[base]:.3f}x, "
        f"median time {med[names[2]] / med[base]:.2f}x, p90 time {p90[names[2]] / p90[base]:.2f}x"
    )
    print("(pyzbar alone counts garbled Vietnamese as unread: it guesses charsets)")


def bench_cards(n: int) -> None:
    from _common import credentials, load_demo_signer

    from vaxqr import card, issue

    info = issue.signer_info(load_demo_signer())
    # Every card of every round has its own holder and credential, as in a batch: card.py
    # caches what cards share (fixed text, dates, commune), never a holder's name or UVCI.
    rounds = [credentials(n, seed=7 + r) for r in range(3)]
    texts = rounds[0]
    print(f"\n4. Printable cards, {n} credentials (CPU time per card, best of 3, "
          "each round other holders)")
    names = [f"{a} {b} {c}" for a in ("Trương", "Nguyễn", "Lê", "Phạm", "Đặng")
             for b in ("Thị Ánh", "Văn", "Ngọc", "Hữu Đức") for c in ("Hồng", "Tâm", "Vy")]
    pictures = [qr.to_image(t) for t in texts]

    def holders(r: int) -> list[Any]:
        return [card.CardData(full_name=names[(r * n + i) % len(names)] + f" {r}{i}",
                              dob=f"19{50 + i % 50}-05-17", dose=2, doses=2,
                              vaccine="Vero Cell (Sinopharm BIBP)",
                              vaccination_date="2021-10-01", commune="UBND xã Dương Tơ",
                              province="Kiên Giang", uvci=f"URN:UVCI:X{r}/{i}",
                              valid_until="2027-11-27", demo=True) for i in range(n)]

    def best(fn: Callable[[Any], object], per_round: list[list[Any]]) -> float:
        return min(cpu_us(fn, items) for items in per_round) / 1000

    card.compose_card(holders(9)[0], pictures[0])  # fonts, fixed text
    cards = [list(zip(holders(r), pictures, strict=True)) for r in range(3)]
    composed = [card.compose_card(d, p) for d, p in cards[0]]
    compose = best(lambda dp: card.compose_card(*dp), cards)

    def encode(ci: card.CardImage) -> bytes:  # what render_card does after composing
        width, height = ci.image.size
        rows = card._rows(height, width)
        rows[:, 1:] = np.asarray(ci.image)
        palette = np.array(ci.image.getpalette(), np.uint8).reshape(-1, 3)
        return card._png(width, height, card._raster(rows, card._head_rows(ci)), palette)

    ours = best(encode, [composed] * 3)
    pillow = best(lambda ci: png_of_card(ci.image), [composed] * 3)
    print(f"   compose (text, QR)                  {compose:6.1f} ms")
    print(f"   encode: vaxqr raster → PNG          {ours:6.1f} ms  "
          f"{len(encode(composed[0])) / 1000:.0f} kB")
    print(f"   encode: Pillow PNG writer (level 3) {pillow:6.1f} ms  "
          f"{len(png_of_card(composed[0].image)) / 1000:.0f} kB   "
          f"vaxqr / Pillow = {ours / pillow:.2f}×")
    for fmt in ("png", "pdf"):
        issue.render_card(texts[0], info, fmt)
        whole = best(lambda t, f=fmt: issue.render_card(t, info, f), rounds)  # type: ignore[misc]
        size = len(issue.render_card(texts[0], info, fmt)) / 1000
        print(f"   {'issue.render_card, ' + fmt:<36}{whole:6.1f} ms  {size:.0f} kB")


def png_of_card(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", dpi=(300, 300), compress_level=3)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=30, help="images per degradation kind")
    parser.add_argument("--seed", type=int, default=2021)
    parser.add_argument("--repeat", type=int, default=200, help="timing repetitions")
    parser.add_argument("--credentials", type=int, default=300, help="payloads for table 0")
    parser.add_argument("--rounds", type=int, default=7, help="rounds for table 0")
    parser.add_argument("--against", type=Path, help="an older qrencode.py to compare with")
    parser.add_argument("--encoder-only", action="store_true", help="table 0 only")
    parser.add_argument("--cards", type=int, default=20, help="credentials for table 4")
    parser.add_argument("--cards-only", action="store_true", help="table 4 only")
    args = parser.parse_args()
    if args.cards_only:
        bench_cards(args.cards)
        return

    bench_encoder(args.credentials, args.rounds, args.against)
    if args.encoder_only:
        return

    rng = np.random.default_rng(args.seed)
    payload = degrade.hc1_like(rng, 560)
    digits = "HC1:" + "0123456789" * 10 + payload[104:]
    print(f"zbar: {'available' if qr.zbar_available() else 'missing'}, raw bytes: "
          f"{'yes' if qr.zbar_binary() else 'no'}")  # fmt: skip
    bench_encode(payload, digits, args.repeat)
    bench_clean(payload, args.repeat)
    bench_corpus(args.per_kind, args.seed)
    bench_cards(args.cards)


if __name__ == "__main__":
    main()
