"""Verify benchmark: stream verify vs bare ECDSA, one-shot CLI vs bare Python, imports.

    .venv/bin/python benchmarks/bench_verify.py [--items 300] [--rounds 15] [--runs 30]

1. Stream verify (a long-running ``Verifier.verify_text`` loop, as ``vaxqr verify -`` runs
   it): CPU time per credential against cryptography's bare ECDSA P-256 verify of the same
   Sig_structure bytes and signatures, measured in alternating rounds. Goal ≤ 1.3×.
   Also: the whole ``vaxqr verify - --json`` process per extra line (info).
2. One-shot ``vaxqr verify 'HC1:…' --trust dsc.pem``: wall time against ``python -c pass``
   with the same interpreter (hyperfine when installed, else repeated runs; medians).
   Goal ≤ 10×.
3. ``python -X importtime`` of that one-shot: the biggest imports, and which heavy
   libraries it loads at all.
4. Verify from a clean PNG against the decoder alone (zxing-cpp, PNG load included).
   Goal ≤ 1.5×.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import (
    DSC,
    PYTHON,
    ROOT,
    credentials,
    interleaved,
    ratio_of_medians,
    trust_store,
    us,
    verdict,
)

VAXQR = str(Path(PYTHON).parent / "vaxqr")
HEAVY = ("typer", "click", "rich", "pydantic", "jsonschema", "PIL", "numpy", "zxingcpp",
         "pyzbar", "qrcode", "segno", "cbor2", "cryptography", "sqlite3")


# --- 1. stream verify ----------------------------------------------------------------------


def bench_stream(items: int, rounds: int) -> tuple[float, float]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from vaxqr import codec, sign
    from vaxqr.verify import Verifier

    texts = credentials(items)
    store = trust_store()
    verifier = Verifier(store)  # validation time: now, read per call, as the CLI does
    for t in texts:
        report = verifier.verify_text(t)
        assert report.valid, report.to_json()
    key = store.signers[0].public_key
    algo = ec.ECDSA(hashes.SHA256())
    bare_items = []
    for t in texts:
        msg = sign.parse_sign1(codec.decompress(codec.b45decode(codec.strip_prefix(t))))
        der = encode_dss_signature(int.from_bytes(msg.signature[:32], "big"),
                                   int.from_bytes(msg.signature[32:], "big"))
        bare_items.append((der, sign.sig_structure(msg.protected_bytes, msg.payload)))

    res = interleaved({
        "bare": (lambda it: key.verify(it[0], it[1], algo), bare_items),
        "verify": (verifier.verify_text, texts),
    }, rounds)
    ratio = ratio_of_medians(res["verify"], res["bare"])
    bare, ver = statistics.median(res["bare"]), statistics.median(res["verify"])
    print(f"1. Stream verify, {items} distinct credentials × {rounds} alternating rounds "
          "(CPU time per credential)")
    print(f"   bare ECDSA P-256 verify (cryptography)   {us(bare)}")
    print(f"   Verifier.verify_text (text → report)      {us(ver)}")
    print(f"   ratio verify / bare                       {ratio:8.2f}×  {verdict(ratio, 1.3)}")
    print(f"   overhead beyond the signature             {us(ver - bare)}"
          f"  ({(ver - bare) / bare:.0%} of a bare verify)")
    return ratio, bare


def bench_stream_pure(items: int, rounds: int) -> float | None:
    """Row 1 again in a child process with ``VAXQR_PURE=1``: what the same code costs where
    the mypyc build is absent (info; ``None`` when this run is already pure Python)."""
    import vaxqr

    if not vaxqr.native_modules():
        return None
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import bench_verify, contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    r, _ = bench_verify.bench_stream(int(sys.argv[2]), int(sys.argv[3]))\n"
            "print(r)")
    out = subprocess.run([PYTHON, "-c", code, str(Path(__file__).parent), str(items),
                          str(rounds)], env={**os.environ, "VAXQR_PURE": "1"},
                         capture_output=True, text=True, check=True).stdout
    ratio = float(out.split()[-1])
    print(f"   the same, pure Python (VAXQR_PURE=1)     {ratio:8.2f}×  (the compiled build: "
          f"{', '.join(vaxqr.native_modules())})")
    return ratio


def bench_cli_stream(lines: int, bare: float) -> dict[str, float | None]:
    """Whole ``vaxqr verify -`` process: CPU per extra input line, human and JSON output,
    against the bare verify measured above."""
    texts = credentials(50, seed=11)
    dsc = str(DSC)
    many_payload = "".join(texts[i % len(texts)] + "\n" for i in range(lines))
    out: dict[str, float | None] = {}
    for extra, what, key in (([], "human output", "cli_stream_human"),
                             (["--json"], "--json", "cli_stream_json")):
        def child_cpu(payload: str, extra: list[str] = extra) -> float:
            return _run_child([VAXQR, "verify", "-", *extra, "--trust", dsc], payload)[1]

        one = statistics.median(child_cpu(texts[0] + "\n") for _ in range(5))
        many = statistics.median(child_cpu(many_payload) for _ in range(3))
        per = (many - one) / (lines - 1)
        print(f"   `vaxqr verify -` {what + ',':14} whole process {us(per)} per extra line "
              f"= {per / bare:.2f}× bare ({lines} lines, output written)")
        out[key] = per / bare
    return out


# --- 2. one-shot ---------------------------------------------------------------------------


def _hyperfine(commands: dict[str, list[str]], runs: int) -> dict[str, float] | None:
    exe = shutil.which("hyperfine")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "hf.json"
        argv = [exe, "-N", "--warmup", "3", "--runs", str(runs), "--style", "none",
                "--export-json", str(out)]
        for name, cmd in commands.items():
            argv += ["-n", name, " ".join(_quote(c) for c in cmd)]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        data = json.loads(out.read_text())
    return {r["command"]: r["median"] for r in data["results"]}


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _run_child(cmd: list[str], stdin: str | None = None) -> tuple[float, float]:
    """Run a command; return its wall time and CPU time (user + system, from wait4)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else None,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return time.perf_counter() - t, usage.ru_utime + usage.ru_stime


def _repeated(commands: dict[str, list[str]], runs: int,
              ) -> tuple[dict[str, float], dict[str, float]]:
    """Interleaved runs (both commands see the same load): median wall and CPU times."""
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(3):
        for cmd in commands.values():
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    for _ in range(runs):
        for name, cmd in commands.items():
            w, c = _run_child(cmd)
            wall[name].append(w)
            cpu[name].append(c)
    return ({n: statistics.median(v) for n, v in wall.items()},
            {n: statistics.median(v) for n, v in cpu.items()})


def bench_oneshot(hc1: str, runs: int) -> float:
    dsc = str(DSC)
    commands = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "vaxqr verify HC1 --trust dsc": [VAXQR, "verify", hc1, "--trust", dsc],
        "vaxqr verify HC1 --trust dsc --json": [VAXQR, "verify", hc1, "--trust", dsc, "--json"],
        "vaxqr --version": [VAXQR, "--version"],
    }
    check = subprocess.run(commands["vaxqr verify HC1 --trust dsc"], capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    how = "hyperfine"
    medians = _hyperfine(commands, runs)
    wall, cpu = _repeated(commands, max(10, runs // 2))
    if medians is None:
        how = "interleaved runs"
        medians = wall
    base, cbase = medians["python -c pass"], cpu["python -c pass"]
    print(f"\n2. One-shot, median of {runs} runs ({how}; same interpreter: {PYTHON})")
    print(f"   {'command':38} {'wall':>9} {'ratio':>7}   {'CPU':>9} {'ratio':>7}  "
          "(CPU: interleaved runs)")
    for name, t in medians.items():
        print(f"   {name:38} {t * 1000:6.1f} ms {t / base:6.2f}×   {cpu[name] * 1000:6.1f} ms "
              f"{cpu[name] / cbase:6.2f}×")
    ratio = medians["vaxqr verify HC1 --trust dsc"] / base
    print(f"   ratio one-shot verify / python -c pass (wall)  {ratio:6.2f}×  {verdict(ratio, 10)}")
    return ratio


# --- 3. imports ----------------------------------------------------------------------------


def _oneshot_code(hc1: str, extra: str = "") -> str:
    argv = ["vaxqr", "verify", hc1, "--trust", str(DSC)]
    return (f"import sys{extra}\nsys.argv = {argv!r}\n"
            "from vaxqr.cli import main\nmain()\n")


def bench_imports(hc1: str, top: int) -> None:
    proc = subprocess.run([PYTHON, "-X", "importtime", "-c", _oneshot_code(hc1)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        head, cum_us, name = line.split("|", 2)
        self_us = head.split(":")[1]
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append((name.strip(), int(self_us), int(cum_us), depth))
    total = sum(r[1] for r in rows)
    print(f"\n3. `python -X importtime` of the one-shot verify: {total / 1000:.1f} ms of imports "
          f"in {len(rows)} modules")
    print(f"   top {top} by cumulative time (nested imports indented):")
    keep = sorted((r for r in rows if r[3] <= 2), key=lambda r: -r[2])[:top]
    for name, self_us, cum_us, depth in keep:
        print(f"   {cum_us / 1000:7.1f} ms  {'  ' * depth}{name}  (self {self_us / 1000:.1f} ms)")
    # the CLI ends a verify with os._exit (no atexit): list the modules just before it
    loaded_code = _oneshot_code(
        hc1, "\nimport os\n_exit = os._exit\n"
        "def _list_and_exit(code):\n"
        "    print(' '.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n"
        "    sys.stderr.flush()\n"
        "    _exit(code)\n"
        "os._exit = _list_and_exit")
    proc = subprocess.run([PYTHON, "-c", loaded_code], capture_output=True, text=True, cwd=ROOT,
                          check=False)
    loaded = set(proc.stderr.strip().splitlines()[-1].split()) if proc.stderr.strip() else set()
    print("   heavy libraries loaded: " + ", ".join(h for h in HEAVY if h in loaded))
    print("   not loaded:             " + ", ".join(h for h in HEAVY if h not in loaded))


# --- 4. clean PNG --------------------------------------------------------------------------


def bench_png(hc1: str, repeat: int) -> float | None:
    try:
        import numpy as np
        import zxingcpp
        from PIL import Image
    except ImportError:
        print("\n4. Verify from a clean PNG: skipped (zxing-cpp, NumPy or Pillow missing)")
        return None
    import io

    from vaxqr import qr
    from vaxqr.verify import Verifier, verify_image

    png = qr.to_png(hc1)
    verifier = Verifier(trust_store())
    fmt = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)

    def decoder_alone(data: bytes) -> object:
        gray = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
        return zxingcpp.read_barcodes(gray, formats=fmt)

    def ours(data: bytes) -> object:
        reports, _ = verify_image(verifier, data, label="png")
        assert reports[0].valid
        return reports

    res = interleaved({"decoder": (decoder_alone, [png] * repeat),
                       "verify": (ours, [png] * repeat)}, 9)
    ratio = ratio_of_medians(res["verify"], res["decoder"])
    print(f"\n4. Verify from a clean PNG ({len(png)} bytes), CPU per picture")
    print(f"   zxing-cpp alone (PNG load + grayscale + read)  "
          f"{statistics.median(res['decoder']) * 1000:7.3f} ms")
    print(f"   verify_image (decode + verify)                  "
          f"{statistics.median(res['verify']) * 1000:7.3f} ms")
    print(f"   ratio                                           {ratio:7.2f}×  "
          f"{verdict(ratio, 1.5)}")
    return ratio


def main(argv: list[str] | None = None) -> dict[str, float | None]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--items", type=int, default=300, help="distinct credentials per round")
    ap.add_argument("--rounds", type=int, default=15, help="alternating measurement rounds")
    ap.add_argument("--runs", type=int, default=30, help="one-shot runs per command")
    ap.add_argument("--top", type=int, default=14, help="imports listed")
    ap.add_argument("--lines", type=int, default=2000, help="lines for the CLI stream row")
    args = ap.parse_args(argv)
    results: dict[str, float | None] = {}
    results["stream_verify"], bare = bench_stream(args.items, args.rounds)
    results["stream_verify_pure"] = bench_stream_pure(args.items, args.rounds)
    results.update(bench_cli_stream(args.lines, bare))
    hc1 = credentials(1, seed=3)[0]
    results["oneshot_verify"] = bench_oneshot(hc1, args.runs)
    bench_imports(hc1, args.top)
    results["png_verify"] = bench_png(hc1, 40)
    return results


if __name__ == "__main__":
    main()
