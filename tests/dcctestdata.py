"""Loading the public EU DCC conformance data (dgc-testdata) as test cases.

Read from ``$VAXQR_DCC_TESTDATA``, defaulting to ``../shared/testdata/dcc`` beside the repo.
Each case's expected verdict follows the data's README: valid only if no applicable flag is
false; otherwise the expected reason is the earliest failing step.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("VAXQR_DCC_TESTDATA", ROOT.parent / "shared" / "testdata" / "dcc"))

# flag → pipeline step, in the order the README gives for the expected reason
FLAG_STEPS = [
    ("EXPECTEDPICTUREDECODE", "picture"),
    ("EXPECTEDUNPREFIX", "prefix"),
    ("EXPECTEDB45DECODE", "base45"),
    ("EXPECTEDCOMPRESSION", "zlib"),
    ("EXPECTEDDECODE", "cbor"),
    ("EXPECTEDVALIDJSON", "cbor"),
    ("EXPECTEDVERIFY", "signature"),
    ("EXPECTEDKEYUSAGE", "key_usage"),
    ("EXPECTEDEXPIRATIONCHECK", "expiry"),
    ("EXPECTEDSCHEMAVALIDATION", "schema"),
]
STEP_ORDER = ["picture", "prefix", "base45", "zlib", "cose", "cbor", "signature",
              "key_usage", "expiry", "schema"]

_CLOCK = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$")


def parse_clock(text: str) -> datetime:
    """VALIDATIONCLOCK: Z, +hh:mm, +hhmm or no offset (= UTC), 0-9 fractional digits."""
    m = _CLOCK.match(text.strip())
    if not m:
        raise ValueError(f"unreadable VALIDATIONCLOCK {text!r}")
    base = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    frac = m.group(2) or ""
    micro = int((frac + "000000")[:6]) if frac else 0
    off = m.group(3)
    tz = UTC
    if off and off != "Z":
        sign = 1 if off[0] == "+" else -1
        hh, mm = int(off[1:3]), int(off[-2:])
        tz = timezone(sign * timedelta(hours=hh, minutes=mm))
    return base.replace(microsecond=micro, tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True)
class Case:
    id: str
    path: Path
    data: dict[str, Any]
    flags: dict[str, bool]

    @property
    def prefix(self) -> str | None:
        v = self.data.get("PREFIX")
        return v if isinstance(v, str) else None

    @property
    def certificate_der(self) -> bytes | None:
        cert = (self.data.get("TESTCTX") or {}).get("CERTIFICATE")
        return base64.b64decode(cert) if isinstance(cert, str) and cert else None

    @property
    def clock(self) -> datetime | None:
        c = (self.data.get("TESTCTX") or {}).get("VALIDATIONCLOCK")
        return parse_clock(c) if isinstance(c, str) else None

    @property
    def png(self) -> bytes | None:
        v = self.data.get("2DCODE")
        if not isinstance(v, str):
            return None
        try:
            return base64.b64decode(v)
        except ValueError:
            return v.encode()

    def expected(self, *, picture: bool) -> tuple[bool, str | None]:
        """(valid, first failing step) as the README defines them."""
        failing = []
        for flag, step in FLAG_STEPS:
            if flag == "EXPECTEDPICTUREDECODE" and not picture:
                continue
            if self.flags.get(flag) is False:
                failing.append(step)
        if not failing:
            return True, None
        return False, min(failing, key=STEP_ORDER.index)


def load_cases() -> tuple[list[Case], list[tuple[str, str]]]:
    """All usable cases, and the unusable files with the reason."""
    known = {f for f, _ in FLAG_STEPS}
    cases, unusable = [], []
    for path in sorted(DATA.rglob("*.json")):
        rel = path.relative_to(DATA).as_posix()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            unusable.append((rel, f"not JSON: {exc}"))
            continue
        res = data.get("EXPECTEDRESULTS") if isinstance(data, dict) else None
        flags = {k: v for k, v in (res or {}).items() if k in known and isinstance(v, bool)}
        if not flags:
            unusable.append((rel, "no known EXPECTEDRESULTS flag"))
            continue
        cases.append(Case(rel, path, data, flags))
    return cases, unusable
