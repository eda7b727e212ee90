"""DCC JSON-schema validation and the EU DCC value sets, loaded from package data.

The official EU DCC JSON schemas (one self-contained file per released version, all
``$ref`` s local) live in ``vaxqr/data/schemas/DCC-<ver>.json``; the EU value sets live in
``vaxqr/data/valuesets/<name>.json``. Both are read from the package's own directory (a
wheel installs them unzipped; :mod:`importlib.resources` would add ~3 ms to every one-shot
``vaxqr verify``). ``SOURCES.md`` next to the files says where each one came from.

:func:`validate_dcc` checks a decoded DCC payload (the map under claim ``-260/1``) against
the schema of its own ``ver`` and returns human-readable messages, each starting with the
JSON path of the offending value (``nam.fnt: 'Nguy' does not match '^[A-Z<]*$'``). On
top of the schema it enforces the HCERT rule that a certificate holds exactly one of
``v``/``t``/``r`` with exactly one entry, which the schemas before 1.3.0 do not express.

Validators are compiled once per schema version and cached; a value set is parsed once
and cached. Only a missing or corrupt package data file raises (a
:class:`~vaxqr.errors.ValidationError`); invalid *input* never raises.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from datetime import date
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, Final

import vaxqr
from vaxqr import SCHEMA_CHECKERS
from vaxqr.errors import ValidationError
from vaxqr.schemafast import (
    Unsupported,
    build,
    checker_source,
    ecma_regex,
    generator_text,
    is_date,
)

if TYPE_CHECKING:  # jsonschema is imported on first use: ~50-70 ms a verify rarely needs
    from jsonschema import FormatChecker
    from jsonschema import ValidationError as SchemaValidationError

__all__ = [
    "SUPPORTED_VERSIONS",
    "VALUESET_NAMES",
    "is_known_code",
    "resolve_version",
    "validate_dcc",
    "valueset",
]

SUPPORTED_VERSIONS: Final[tuple[str, ...]] = (
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "1.2.0",
    "1.2.1",
    "1.3.0",
    "1.3.2",
    "1.3.3",
)
"""Schema versions shipped as package data, oldest first (see ``data/schemas/SOURCES.md``)."""

VALUESET_NAMES: Final[tuple[str, ...]] = (
    "country-2-codes",
    "disease-agent-targeted",
    "vaccine-mah-manf",
    "vaccine-medicinal-product",
    "vaccine-prophylaxis",
)
"""Value sets shipped as package data, by file name (without ``.json``)."""

_GROUPS: Final[tuple[str, ...]] = ("v", "t", "r")
_ROOT: Final[str] = "(root)"
_MAX_MESSAGE: Final[int] = 200
_VERSION_RE: Final[re.Pattern[str]] = re.compile(r"(\d{1,4})\.(\d{1,4})\.(\d{1,4})", re.ASCII)
_VERSION_TUPLES: Final[dict[tuple[int, int, int], str]] = {
    (int(a), int(b), int(c)): v
    for v in SUPPORTED_VERSIONS
    for a, b, c in [v.split(".")]
}
# RFC 3339 section 5.6 ``date-time``; jsonschema only checks it when the optional
# rfc3339-validator package is installed, so vaxqr registers its own check.
_DATE_TIME_RE: Final[re.Pattern[str]] = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?"
    r"(?:[Zz]|[+-](\d{2}):(\d{2}))",
    re.ASCII,  # RFC 3339 digits are ASCII ("٢٠٢١" is not a year)
)


def _is_rfc3339_date_time(instance: object) -> bool:
    """Return whether ``instance`` is an RFC 3339 ``date-time`` (non-strings pass)."""
    if not isinstance(instance, str):
        return True
    m = _DATE_TIME_RE.fullmatch(instance)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        date(year, month, day)
    except ValueError:
        return False
    if hour > 23 or minute > 59 or second > 60:  # 60: leap second, allowed by RFC 3339
        return False
    off_h, off_m = m.group(7), m.group(8)
    return off_h is None or (int(off_h) <= 23 and int(off_m) <= 59)


@cache
def _format_checker() -> FormatChecker:
    """Build the format checker: jsonschema's built-ins plus vaxqr's ``date-time``."""
    from jsonschema import FormatChecker

    checker = FormatChecker()
    checker.checks("date-time")(_is_rfc3339_date_time)
    return checker


# The formats the fast pre-check asserts, with the same checks as the validator's.
_FAST_FORMATS: Final = {"date": is_date, "date-time": _is_rfc3339_date_time}


# From the package's own path: a module compiled by mypyc into the package's group reports a
# __file__ one "vaxqr/" too deep, so this module's own __file__ is not used.
_DATA_DIR: Final = os.path.join(os.path.dirname(os.path.abspath(vaxqr.__file__)), "data")


def _read_data(*parts: str) -> Any:
    """Read and parse one JSON file of vaxqr's package data.

    Raises:
        ValidationError: the file is missing, unreadable or not valid JSON.
    """
    rel = "/".join(parts)
    try:
        with open(os.path.join(_DATA_DIR, *parts), encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, ValueError) as exc:
        raise ValidationError(
            f"package data file vaxqr/data/{rel} is missing or unreadable: {exc}",
            hint="reinstall vaxqr; its data files are incomplete",
        ) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"package data file vaxqr/data/{rel} is not valid JSON: {exc}",
            hint="reinstall vaxqr; its data files are corrupt",
        ) from exc


@cache
def _validator(version: str) -> Any:
    """Compile (once) the validator for one shipped schema version.

    The validator class is the one the schema's ``$schema`` declares (draft 2020-12 for
    every shipped version), with format assertion switched on.

    Raises:
        ValidationError: the schema file is missing, corrupt or not a valid schema.
    """
    schema = _read_data("schemas", f"DCC-{version}.json")
    if not isinstance(schema, dict):
        raise ValidationError(f"package data file vaxqr/data/schemas/DCC-{version}.json "
                              "does not hold a JSON object", hint="reinstall vaxqr")
    from jsonschema import validators
    from jsonschema.exceptions import SchemaError

    cls = validators.validator_for(schema)
    try:
        cls.check_schema(schema)
        cls = validators.extend(cls, {"pattern": _ecma_pattern})
    except SchemaError as exc:
        raise ValidationError(
            f"package data file vaxqr/data/schemas/DCC-{version}.json is not a valid "
            f"JSON schema: {exc.message}",
            hint="reinstall vaxqr; its data files are corrupt",
        ) from exc
    return cls(schema, format_checker=_format_checker())


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """jsonschema's ``pattern`` keyword, with the pattern read as ECMA-262 reads it
    (:func:`vaxqr.schemafast.ecma_regex`): Python's reading let ``"NGUYEN\\n"`` and
    Arabic-Indic digits through the DCC schemas' patterns."""
    from jsonschema.exceptions import ValidationError as SchemaError

    if not validator.is_type(instance, "string"):
        return
    try:
        regex = ecma_regex(pattern)
    except Unsupported:  # never for the shipped schemas: then as jsonschema reads it
        regex = re.compile(pattern)
    if not regex.search(instance):
        yield SchemaError(f"{instance!r} does not match {pattern!r}")


# The checkers compiled ahead of time by ``scripts/build_native.py`` (optional, gitignored):
# one mypyc extension with a factory per checker source, keyed by the source itself.
_COMPILED_CHECKERS: Final = f"vaxqr.{SCHEMA_CHECKERS}"


@cache
def _compiled_makers() -> dict[str, Any]:
    """The compiled checker factories by their source; empty (every checker is ``exec``'d)
    with ``VAXQR_PURE``, without a compiled module, when it cannot be imported, or when it
    was generated by another text of :mod:`vaxqr.schemafast` than the current one."""
    import vaxqr

    if vaxqr.NATIVE_STATE == "off":
        return {}
    import importlib
    import importlib.machinery
    import importlib.util

    try:
        spec = importlib.util.find_spec(_COMPILED_CHECKERS)
        # only the extension: its generated .py alone would just be the exec path, slower
        if spec is None or not str(spec.origin).endswith(
                tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            return {}
        module = importlib.import_module(_COMPILED_CHECKERS)
        generator, makers = module.GENERATOR, module.MAKERS
    except Exception:  # a broken or foreign build (ImportError, ...): the exec path
        return {}
    if not isinstance(makers, dict) or generator != generator_text():
        return {}
    return {k: f for k, f in makers.items() if isinstance(k, str) and callable(f)}


def _checker(version: str, also: list[dict[str, Any]]) -> Any:
    """The "certainly valid" pre-check of one shipped version (see :mod:`vaxqr.schemafast`),
    or None when that schema needs jsonschema for everything.

    The compiled factory is used only when it was generated from exactly the source the
    current generator makes of the current schema file (that source is its key), by the
    current generator; otherwise the source is ``exec``'d: edits never run an old compiled
    checker.
    """
    schema = _read_data("schemas", f"DCC-{version}.json")
    if not isinstance(schema, dict):
        return None
    try:
        source, env = checker_source(schema, _FAST_FORMATS, also=also)
    except Unsupported:
        return None
    maker = _compiled_makers().get(source)
    if maker is not None:
        try:
            fn = maker(**env)
        except Exception:  # a factory that does not fit its source: not used
            fn = None
        if callable(fn):
            return fn
    return build(source, env)


@cache
def _fast_check(version: str) -> Any:
    """The pre-check of one shipped version's schema alone (None when unsupported)."""
    return _checker(version, [])


# The HCERT rule of :func:`_group_problems` as a schema, for the fast pre-check: exactly one
# of v/t/r, with exactly one entry. The types make it stricter than the rule (the DCC
# schemas require them anyway), which a "certainly valid" check may be.
_GROUP_RULE: Final = {
    "type": "object",
    "oneOf": [{"required": [g]} for g in _GROUPS],
    "properties": {g: {"type": "array", "minItems": 1, "maxItems": 1} for g in _GROUPS},
}


@cache
def _fast_valid(version: str) -> Any:
    """The pre-check of one shipped version with the v/t/r rule as well: true only when
    :func:`validate_dcc` certainly finds nothing (None when the schema is unsupported)."""
    return _checker(version, [_GROUP_RULE])


def compiled_versions() -> tuple[str, ...]:
    """The shipped versions whose :func:`validate_dcc` pre-check runs compiled (builds
    every checker; for reports such as ``vaxqr --version``)."""
    return tuple(v for v in SUPPORTED_VERSIONS
                 if type(_fast_valid(v)).__module__ == _COMPILED_CHECKERS)


def checker_sources() -> dict[str, str]:
    """The source of :func:`validate_dcc`'s pre-check for every shipped version the fast
    path supports (what ``scripts/build_native.py`` compiles ahead of time).

    Raises:
        ValidationError: a schema file is missing or corrupt.
    """
    out = {}
    for version in SUPPORTED_VERSIONS:
        schema = _read_data("schemas", f"DCC-{version}.json")
        try:
            if isinstance(schema, dict):
                out[version] = checker_source(schema, _FAST_FORMATS, also=[_GROUP_RULE])[0]
        except Unsupported:
            pass
    return out


def _never(dcc: object) -> bool:
    return False


# ``ver`` string -> the checker of its schema (``_never`` when none): a pure function of an
# immutable string, remembered for at most _MAX_VERS strings.
_FAST_BY_VER: Final[dict[str, Any]] = {}
_MAX_VERS: Final = 256


def _fast_for(ver: str) -> Any:
    version = resolve_version(ver)
    fast = (_fast_valid(version) if version is not None else None) or _never
    if len(_FAST_BY_VER) >= _MAX_VERS:
        _FAST_BY_VER.clear()
    _FAST_BY_VER[ver] = fast
    return fast


def resolve_version(ver: object) -> str | None:
    """Return the shipped schema version used to validate a DCC whose ``ver`` is ``ver``.

    An exact match wins. A patch release vaxqr does not ship (``"1.3.5"``, ``"1.0.4"``)
    falls back to the newest shipped schema of the same ``MAJOR.MINOR``. Anything else
    (unknown minor, not ``MAJOR.MINOR.PATCH``, not a string) gives ``None``.

    >>> resolve_version("1.3.0"), resolve_version("1.3.5"), resolve_version("9.9.9")
    ('1.3.0', '1.3.3', None)
    """
    if not isinstance(ver, str):
        return None
    m = _VERSION_RE.fullmatch(ver)
    if m is None:
        return None
    key = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    exact = _VERSION_TUPLES.get(key)
    if exact is not None:
        return exact
    same_minor = [k for k in _VERSION_TUPLES if k[:2] == key[:2]]
    return _VERSION_TUPLES[max(same_minor)] if same_minor else None


@lru_cache(maxsize=256)
def _resolve_str(ver: str) -> str | None:
    return resolve_version(ver)


def _path(parts: Iterable[object]) -> str:
    """Format a JSON path: ``("v", 0, "dn")`` becomes ``v[0].dn``; empty is ``(root)``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or _ROOT


def _clip(text: str) -> str:
    """Shorten a message that would otherwise quote a large value."""
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _missing(err: SchemaValidationError) -> list[str]:
    """Names a ``required`` error reports as missing."""
    inst = err.instance
    wanted = err.validator_value if isinstance(err.validator_value, list) else []
    return [p for p in wanted if isinstance(p, str) and isinstance(inst, dict) and p not in inst]


def _explain_combinator(err: SchemaValidationError, at: list[object]) -> Iterator[str]:
    """Turn a failed ``oneOf``/``anyOf`` of ``required`` lists into plain messages.

    Properties missing in every alternative are reported one by one as missing; the
    rest becomes one "exactly one of" / "at least one of" message. At the DCC root the
    ``v``/``t``/``r`` alternative is left to the explicit group check.
    """
    branches: dict[int, set[str]] = {}
    for sub in err.context or []:
        if sub.validator != "required" or not sub.relative_schema_path:
            yield f"{_path(at)}: {_clip(err.message)}"
            return
        idx = sub.relative_schema_path[0]
        if isinstance(idx, int):
            branches.setdefault(idx, set()).update(_missing(sub))
    n_alternatives = len(err.validator_value) if isinstance(err.validator_value, list) else 0
    if not branches:  # "valid under each of": several alternatives matched
        if at:  # at the root this is the v/t/r rule, reported by the group check
            yield f"{_path(at)}: matches more than one alternative, exactly one is allowed"
        return
    common = set.intersection(*branches.values()) if len(branches) == n_alternatives else set()
    for prop in sorted(common):
        yield f"{_path([*at, prop])}: required property is missing"
    rest = sorted({p for names in branches.values() for p in names} - common)
    if not rest or (not at and set(rest) <= set(_GROUPS)):
        return
    quantifier = "exactly one" if err.validator == "oneOf" else "at least one"
    listed = ", ".join(repr(p) for p in rest)
    yield f"{_path(at)}: {quantifier} of {listed} is required"


def _messages(err: SchemaValidationError) -> Iterator[str]:
    """Turn one jsonschema error into zero or more vaxqr messages."""
    at = list(err.absolute_path)
    kind = err.validator
    if kind == "required":
        for prop in _missing(err):
            yield f"{_path([*at, prop])}: required property is missing"
    elif kind in ("oneOf", "anyOf"):
        yield from _explain_combinator(err, at)
    elif kind == "pattern" and isinstance(err.instance, str):
        # jsonschema quotes the pattern with repr(), doubling every backslash.
        yield f"{_path(at)}: {_clip(repr(err.instance))} does not match '{err.validator_value}'"
    elif kind in ("maxLength", "minLength") and isinstance(err.instance, str):
        word = "long" if kind == "maxLength" else "short"
        limit = "at most" if kind == "maxLength" else "at least"
        value = _clip(repr(err.instance))
        yield (f"{_path(at)}: {value} is too {word} ({len(err.instance)} characters, "
               f"{limit} {err.validator_value} allowed)")
    else:
        yield f"{_path(at)}: {_clip(err.message)}"


def _group_problems(dcc: dict[str, Any]) -> tuple[list[str], set[str]]:
    """Check "exactly one of v/t/r, with exactly one entry".

    Returns the messages and the group keys whose entry count was reported (so the
    schema's own ``minItems``/``maxItems`` message for them can be dropped).
    """
    present = [g for g in _GROUPS if g in dcc]
    if len(present) != 1:
        found = ", ".join(repr(g) for g in present) or "none"
        return [f"{_ROOT}: must contain exactly one of 'v', 't', 'r' (found {found})"], set()
    group = present[0]
    entries = dcc[group]
    if isinstance(entries, list) and len(entries) != 1:
        return [f"{group}: must contain exactly one entry (found {len(entries)})"], {group}
    return [], set()


def validate_dcc(dcc: object) -> list[str]:
    """Validate a decoded DCC against the schema of its own ``ver``.

    Args:
        dcc: the health certificate as decoded from CBOR/JSON (normally a ``dict``).

    Returns:
        Human-readable problems, each starting with the JSON path it concerns, e.g.
        ``"nam.fnt: 'Nguy' does not match '^[A-Z<]*$'"``. An empty list means valid.
        A missing, malformed or unsupported ``ver`` gives a single message saying so,
        since no schema can be chosen. Schema ``format`` s (``date``, ``date-time``)
        are asserted, and exactly one of ``v``/``t``/``r`` with exactly one entry is
        required whatever the schema version.

    Raises:
        ValidationError: only if a package data file is missing or corrupt.
    """
    if type(dcc) is dict:  # the usual case, certainly valid: no other work at all
        ver = dcc.get("ver")
        if type(ver) is str:
            fast = _FAST_BY_VER.get(ver) or _fast_for(ver)
            if fast(dcc):
                return []  # tests/test_schemas.py: jsonschema would find nothing either
    return _problems(dcc)


def _problems(dcc: object) -> list[str]:
    """:func:`validate_dcc` when the fast pre-check is unsure: jsonschema decides."""
    if not isinstance(dcc, dict):
        return [f"{_ROOT}: a DCC must be a JSON object, not {type(dcc).__name__}"]
    supported = ", ".join(SUPPORTED_VERSIONS)
    if "ver" not in dcc:
        return [f"ver: required property is missing, so no schema version can be chosen "
                f"(supported: {supported})"]
    ver = dcc["ver"]
    version = _resolve_str(ver) if type(ver) is str else resolve_version(ver)
    if version is None:
        if isinstance(ver, str) and _VERSION_RE.fullmatch(ver):
            return [f"ver: unsupported schema version {ver!r} (supported: {supported})"]
        return [f"ver: {_clip(repr(ver))} is not a schema version of the form "
                f"MAJOR.MINOR.PATCH (supported: {supported})"]
    group_msgs, counted = _group_problems(dcc)
    validator = _validator(version)
    found: list[str] = []
    for err in validator.iter_errors(dcc):
        path = tuple(err.absolute_path)
        if (len(path) == 1 and path[0] in counted
                and err.validator in ("minItems", "maxItems")):
            continue
        found.extend(_messages(err))
    found.extend(group_msgs)
    return sorted(dict.fromkeys(found))


@cache
def _valueset_values(name: str) -> dict[str, dict[str, Any]]:
    """Load (once) the ``valueSetValues`` mapping of one shipped value set.

    Raises:
        ValidationError: ``name`` is not a shipped value set, or its file is missing or
            corrupt.
    """
    if name not in VALUESET_NAMES:
        raise ValidationError(
            f"unknown value set {name!r}",
            hint="known value sets: " + ", ".join(VALUESET_NAMES),
        )
    data = _read_data("valuesets", f"{name}.json")
    values = data.get("valueSetValues") if isinstance(data, dict) else None
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise ValidationError(
            f"package data file vaxqr/data/valuesets/{name}.json has no valid "
            "'valueSetValues' object",
            hint="reinstall vaxqr; its data files are corrupt",
        )
    return values


def valueset(name: str) -> dict[str, dict[str, Any]]:
    """Return the ``valueSetValues`` mapping of an EU value set, code to entry.

    Args:
        name: one of :data:`VALUESET_NAMES`, e.g. ``"vaccine-medicinal-product"``.

    Returns:
        A fresh copy (safe to modify) of ``{code: {"display", "lang", "active",
        "system", "version"}}``. Deprecated codes are included with ``active: false``.

    Raises:
        ValidationError: unknown value set name, or its data file is missing or corrupt.
    """
    return {code: dict(entry) for code, entry in _valueset_values(name).items()}


def is_known_code(valueset_name: str, code: str) -> bool:
    """Return whether ``code`` appears in a value set (deprecated codes count as known).

    Raises:
        ValidationError: unknown value set name, or its data file is missing or corrupt.
    """
    return code in _valueset_values(valueset_name)
