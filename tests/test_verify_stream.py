"""The `vaxqr verify -` stream's output, byte for byte, against plain reference renderings.

The human view and the JSON line are built for speed (fixed texts made once, one escaping
check per report, the C JSON encoder called once, output written in blocks); these tests
hold them to the straightforward versions they replaced: ``_render_reference`` below is the
renderer as it was (one ``printable`` call per untrusted text, ``datetime.fromtimestamp``)
and the JSON line is ``json.dumps(report.to_json(), ensure_ascii=False)`` with unprintables
escaped. Reports come from
the hostile seeds, from random reports with hostile text in every field, and from a whole
``vaxqr verify -`` process fed a batch of mixed lines.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonref import terminal_safe_json

from vaxqr import verify_view
from vaxqr.cli import printable
from vaxqr.cli_verify import MAX_LINE
from vaxqr.verdict_text import DATE_ORDER, LABELS, LANGUAGES, REASONS, WORDS
from vaxqr.verify import STEPS, HolderResult, Report, Step, Verifier, report_json_text
from vaxqr.verify_view import render

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fuzz"))
import fuzzkit  # noqa: E402

KIT = fuzzkit.Kit()
SEEDS = fuzzkit.hostile_seeds(KIT)
VAXQR = str(Path(sys.executable).parent / "vaxqr")


def _day(text: str, lang: str) -> str:
    """A date as ``lang`` shows it: Vietnamese turns ISO 8601's YYYY-MM-DD and YYYY-MM
    around (DD/MM/YYYY, MM/YYYY); anything else is shown as it is."""
    m = re.fullmatch(r"(\d{4})-(\d{2})(?:-(\d{2}))?", text, re.ASCII)
    if DATE_ORDER[lang] != "dd/mm/yyyy" or m is None:
        return text
    return "/".join(part for part in reversed(m.groups()) if part)


def _render_reference(report: Report, *, color: bool, lang: str = "en") -> str:
    """verify_view.render as it was before it was made fast, with the words of ``lang``
    (vaxqr/verdict_text.py; in English, the renderer as it was, kept verbatim but for the
    words' look-up; Vietnamese has its vaccine on a row of its own and its dates turned
    around)."""
    styles, reset = verify_view._STYLES, verify_view._RESET
    words, labels = WORDS[lang], LABELS[lang]

    def style(name: str, text: str) -> str:
        return f"{styles[name]}{text}{reset}" if color else text

    s = report.summary() or {}
    label = style("dim", printable(report.label))
    pad = max(len(words["reason"]), len(words["details"])) + 1
    if report.valid:
        out = [f"{style('valid', ' ✔ ' + words['valid'] + ' ')} {label}"]
    else:
        # CANNOT CHECK (the trust material cannot judge it), CANNOT READ (no QR code read)
        head = {"trust": ("cannot", " ? " + words["cannot_check"] + " "),
                "picture": ("cannot", " ? " + words["cannot_read"] + " ")}.get(
            report.failed or "", ("invalid", " ✘ " + words["not_valid"] + " "))
        out = [f"{style(*head)} {label}",
               f"  {style('bold', words['reason'])}{' ' * (pad - len(words['reason']))}"
               f"{REASONS[lang].get(report.failed or '', words['other'])}",
               f"  {style('dim', words['details'])}{' ' * (pad - len(words['details']))}"
               f"{printable(report.failed)}: {printable(report.reason)}"]
    rows = []
    if s.get("full_name"):
        rows.append(("holder", s["full_name"]))
    if s.get("dob"):
        rows.append(("born", _day(str(s["dob"]), lang)))
    if s.get("type") == "vaccination":
        if "vaccine" in labels:
            rows.append(("dose", f"{s.get('dose')}/{s.get('doses')}"))
            if s.get("vaccine"):
                rows.append(("vaccine", s["vaccine"]))
        else:
            rows.append(("dose", f"{s.get('dose')}/{s.get('doses')}  {s.get('vaccine')}"))
        rows.append(("vaccinated", _day(str(s.get("date")), lang)))
    elif s.get("type"):
        rows.append(("type", words.get(s["type"], s["type"])))
    commune = verify_view._commune(report) or s.get("issuer")
    if commune:
        rows.append(("issuer", commune))
    exp = (report.claims or {}).get("exp")
    if exp is not None and report.signer is not None:
        try:
            until = _day(datetime.fromtimestamp(exp, UTC).date().isoformat(), lang)
        except (ValueError, OverflowError, OSError):
            until = f"{exp} ({words['not_a_date']})"
        rows.append(("until", until))
    if s.get("uvci"):
        rows.append(("credential", str(s["uvci"])))
    if report.holder is not None:
        match = words["matches"] if report.holder.matched else words["does_not_match"]
        said = [value for field, value in (("full_name", report.holder.card_name),
                                           ("dob", _day(report.holder.card_dob, lang)))
                if field in report.holder.mismatched]
        if said:
            match += f" — {words['card_says']} " + ", ".join(said)
        if report.holder.card_source == "credential_picture":
            match += " — " + words["card_in_picture"]
        rows.append(("id_card", match))
    width = max(len(v) for v in labels.values()) + 1
    out.extend(f"  {labels[key] + ':':<{width}} {printable(value)}" for key, value in rows)
    out.extend(f"  {style('warn', words['warning'])} {printable(w)}" for w in report.warnings)
    return "\n".join(out) + "\n"


def _json_reference(report: Report, trust_warnings: tuple[str, ...] = ()) -> str:
    """The JSON line as the CLI writes it: json.dumps, with what a terminal would not print
    as itself escaped (tests/jsonref.py), and the trust store's warnings last."""
    return terminal_safe_json({**report.to_json(),
                               "trust_warnings": list(trust_warnings)}) + "\n"


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:  # the two must fail alike too
        return (type(exc).__name__, str(exc))


def _same_everywhere(report: Report) -> None:
    for lang in LANGUAGES:
        for color in (False, True):
            assert _outcome(render, report, printable, color=color, lang=lang) == \
                _outcome(_render_reference, report, color=color, lang=lang)
    assert _outcome(report_json_text, report) == \
        _outcome(terminal_safe_json, report.to_json())


@pytest.mark.parametrize(("name", "text", "step"), SEEDS, ids=[s[0] for s in SEEDS])
def test_seed_reports_render_as_the_reference(name: str, text: str, step: Any) -> None:
    _same_everywhere(KIT.verify(text))


def test_valid_and_edge_credentials_render_as_the_reference() -> None:
    rng = random.Random(7)
    for _ in range(60):
        _same_everywhere(KIT.verify(KIT.credential(fuzzkit.near_valid_dcc(rng))))
    for exp in (0, 1, 86399, 86400, 2**31, 253402300799, 253402300800, 2**39, -1, -86401,
                fuzzkit.EXP):
        _same_everywhere(KIT.verify(KIT.credential(exp=exp)))


# Hostile text: controls, bidi and format characters, line and paragraph separators, NEL,
# quotes and backslashes for JSON, surrogates, private use, plain Vietnamese.
_HOSTILE = st.text(alphabet=st.one_of(
    st.sampled_from("\x00\x1b\t\n\r\x7f\x85\u00a0\u200b\u200e\u202e\u2028\u2029\ufeff"
                    '"\\/ễĐ✔\ud800\ue000'),
    st.characters()), max_size=30)
_VALUE = st.one_of(_HOSTILE, st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                   st.floats(allow_nan=False), st.lists(_HOSTILE, max_size=3),
                   st.dictionaries(_HOSTILE, _HOSTILE, max_size=3))
_EXP = st.one_of(st.none(), st.integers(-(2**40), 2**40), st.sampled_from(
    [0, 86399, 86400, 253402300799, 253402300800, -62135596800, -62135596801]),
    st.floats(-1e12, 1e12), st.booleans(), _HOSTILE)


@st.composite
def _reports(draw: Any) -> Report:
    names = draw(st.lists(st.sampled_from(STEPS), unique=True, max_size=len(STEPS)))
    steps = tuple(Step(n, draw(st.sampled_from(["pass", "fail", "skipped"])), draw(_HOSTILE))
                  for n in names)
    credential = None
    if draw(st.booleans()):
        dcc: dict[str, Any] = fuzzkit.default_dcc()
        for key in draw(st.lists(st.sampled_from(["fn", "gn", "fnt", "gnt"]), max_size=4)):
            dcc["nam"][key] = draw(_VALUE)
        for key in draw(st.lists(st.sampled_from(["dn", "sd", "dt", "is", "ci", "mp", "co"]),
                                 max_size=4)):
            dcc["v"][0][key] = draw(_VALUE)
        if draw(st.booleans()):
            dcc["dob"] = draw(_VALUE)
        if draw(st.booleans()):
            dcc["t"] = dcc.pop("v")
        credential = dcc
    claims = draw(st.one_of(st.none(), st.fixed_dictionaries({"iss": _HOSTILE, "exp": _EXP})))
    holder = draw(st.one_of(st.none(), st.builds(
        HolderResult, st.booleans(), _HOSTILE, st.one_of(_HOSTILE, st.dates().map(str)),
        st.lists(_HOSTILE).map(tuple), st.sampled_from(["id_card", "credential_picture"]),
        st.lists(st.sampled_from(["full_name", "dob"]), unique=True).map(tuple))))
    return Report(draw(_HOSTILE), steps, draw(st.one_of(st.none(), _HOSTILE)), credential,
                  claims, draw(st.sampled_from([None, KIT.store.signers[0]])), holder,
                  tuple(draw(st.lists(_HOSTILE, max_size=3))))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_reports())
def test_random_hostile_reports_render_as_the_reference(report: Report) -> None:
    _same_everywhere(report)


def test_far_dates_are_the_reference_dates() -> None:
    """The day arithmetic of "Valid until" against datetime at the edges of its range."""
    for exp in [0, 1, 86399, 86400, 951782400, 253402300799, 253402300800, -1, 2**63,
                *random.Random(3).sample(range(0, 253402300800), 2000)]:
        try:
            want = datetime.fromtimestamp(exp, UTC).date().isoformat()
        except (ValueError, OverflowError, OSError):
            want = f"{exp} (not a calendar date)"
        assert verify_view._until(exp) == want


# --------------------------------------------------------------------------- whole process


def _batch(rng: random.Random) -> tuple[bytes, list[str | None]]:
    """Mixed lines (valid, damaged, hostile, blank, too long), each ended by LF, CRLF or CR
    at random: the bytes to pipe in, and each line as the reader should see it (None: too
    long)."""
    good = [KIT.credential(), *(KIT.credential(fuzzkit.near_valid_dcc(rng)) for _ in range(8)),
            KIT.credential(fuzzkit.default_dcc(fn="Nguyễn\u2028\x85\u2029\x1b[31m"))]
    texts = [t for _, t, _ in SEEDS if "\r" not in t and "\n" not in t
             and len(t.encode("utf-8", "surrogatepass")) <= MAX_LINE]
    lines: list[str | None] = []
    data = []
    for i in range(300):
        kind = rng.randrange(6)
        if kind <= 1:
            line = rng.choice(good)
        elif kind == 2:
            line = rng.choice(texts)
        elif kind == 3:
            line = fuzzkit.mutate_text(rng.choice(good), rng)
        elif kind == 4:
            line = rng.choice(["", "   ", "Xin chào \x1b[31m\u202e", "HC1:GGW"])
        else:
            line = "A" * (3 * MAX_LINE) if i % 50 == 5 else rng.choice(good)
        raw = line.encode("utf-8", "surrogatepass")
        if b"\r" in raw or b"\n" in raw:
            continue
        lines.append(None if len(raw) > MAX_LINE else raw.decode("utf-8", "replace"))
        data.append(raw + rng.choice([b"\n", b"\r\n", b"\r"]))
    return b"".join(data), lines


@pytest.mark.parametrize(("as_json", "lang"), [(False, "en"), (False, "vi"), (True, "vi")],
                         ids=["human", "human-vi", "json"])
def test_stream_output_is_the_reference_line_by_line(tmp_path: Path, as_json: bool,
                                                      lang: str) -> None:
    """A batch of 300 mixed lines through a real `vaxqr verify -`: its stdout is exactly the
    reference output of each line's report, in order (--json: the same in any language)."""
    from vaxqr.trust import TrustStore

    dsc = tmp_path / "dsc.pem"
    dsc.write_bytes(KIT.cert.public_bytes(Encoding.PEM))
    data, lines = _batch(random.Random(11))
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    env.update(NO_COLOR="1", PYTHONIOENCODING="utf-8")
    r = subprocess.run([VAXQR, "verify", "-", "--trust", str(dsc), "--at", fuzzkit.AT.isoformat(),
                        "--state", str(tmp_path / "state.json"), "--lang", lang,
                        *(["--json"] * as_json)],
                       input=data, capture_output=True, env=env, timeout=300)
    assert r.returncode == 1, r.stderr.decode()
    store = TrustStore.from_paths([dsc], at=fuzzkit.AT, state_file=tmp_path / "state2.json")
    verifier = Verifier(store, at=fuzzkit.AT)
    expected = []
    for n, line in enumerate(lines, 1):
        if line is None:
            report = verifier.picture_failure(
                f"stdin:{n}", f"line longer than {MAX_LINE // 1024} KiB: not an HC1 credential",
                step="prefix")
        elif line.strip():
            report = verifier.verify_text(line, label=f"stdin:{n}")
        else:
            continue
        expected.append(_json_reference(report, store.warnings) if as_json
                        else _render_reference(report, color=False, lang=lang))
    assert r.stdout == "".join(expected).encode("utf-8")
