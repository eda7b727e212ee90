"""What vaxqr's JSON output must be, defined independently of its code: ``json.dumps`` with
``ensure_ascii=False``, then every character ``str.isprintable`` rejects written as the escape
``json.dumps`` itself would give it (``ensure_ascii=True``: ``\\uXXXX``, surrogate pairs)."""

from __future__ import annotations

import json
from typing import Any


def terminal_safe_json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in text)
