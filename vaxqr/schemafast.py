"""A fast, conservative pre-check for the DCC JSON schemas: "certainly valid" or "ask jsonschema".

jsonschema is the reference validator of :mod:`vaxqr.schemas`, and its messages are what
users see; but importing it costs ~50-70 ms and validating one DCC ~0.2 ms, more than the
ECDSA signature check itself. Almost every DCC a verifier meets is valid, so this module
compiles each shipped schema once into a plain Python function that answers ``True`` only
when the DCC is certainly valid under the keywords it understands, and ``False`` whenever it
is invalid *or unsure*; :func:`vaxqr.schemas.validate_dcc` then runs jsonschema as before.
Verdicts and messages therefore never change; only the valid path gets faster.

Soundness rules (each checked by ``tests/test_schemas.py`` against jsonschema):

* only the keywords the shipped schemas use are compiled (``type``, ``properties``,
  ``required``, ``items``, ``minItems``/``maxItems``, ``pattern``, ``minLength``/``maxLength``,
  ``minimum``/``maximum``, ``format`` ``date``/``date-time``, local ``$ref``, and
  ``oneOf``/``anyOf`` of ``required`` lists); any other keyword makes :func:`compile_checker`
  raise :class:`Unsupported`, and that schema version always goes to jsonschema;
* values of any type but the exact JSON ones (``dict``, ``list``, ``str``, ``int``,
  ``float``, ``bool``, ``None``) are "unsure", and so are ``float`` where an ``integer`` is
  required: jsonschema's looser rules for those are left to jsonschema;
* patterns run with :func:`re.search` and lengths count code points, as jsonschema does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

__all__ = ["Unsupported", "compile_checker", "is_date"]

# Keywords that only annotate (never change a verdict in draft 2020-12 without a vocabulary
# that asserts them); "valueset-uri" is the DCC schemas' own annotation.
_ANNOTATIONS = frozenset({
    "$schema", "$id", "$comment", "$defs", "title", "description", "examples",
    "valueset-uri", "deprecated", "readOnly", "writeOnly", "default",
})
_TYPES = {
    "object": "{t} is dict", "array": "{t} is list", "string": "{t} is str",
    "integer": "{t} is int", "number": "({t} is int or {t} is float)", "boolean": "{t} is bool",
    "null": "{x} is None",
}
_PLAIN = (dict, list, str, int, float, bool, type(None))
_MEMO_SIZE = 4096  # strings remembered per pattern or format
_MISSING = object()
# jsonschema's own ``date`` format check (jsonschema/_format.py ``is_date``).
_RE_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)


class Unsupported(Exception):
    """The schema uses a keyword this compiler does not handle exactly."""


def is_date(instance: object) -> bool:
    """The ``date`` format exactly as jsonschema checks it (non-strings pass)."""
    if not isinstance(instance, str):
        return True
    if not _RE_DATE.fullmatch(instance):
        return False
    try:
        date.fromisoformat(instance)
    except ValueError:
        return False
    return True


class _Compiler:
    """Generates one Python function with every subschema (and ``$ref``) inlined."""

    MAX_DEPTH = 32

    def __init__(self, root: Mapping[str, Any], formats: Mapping[str, Callable[[Any], bool]]):
        self.root = root
        self.formats = formats
        self.env: dict[str, Any] = {"_PLAIN": _PLAIN, "_MISSING": _MISSING}
        self.counter = 0
        self.active_refs: list[str] = []

    def const(self, value: Any, prefix: str) -> str:
        self.counter += 1
        name = f"{prefix}{self.counter}"
        self.env[name] = value
        return name

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise Unsupported(f"non-local $ref {ref!r}")
        target: Any = self.root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                raise Unsupported(f"unresolvable $ref {ref!r}")
            target = target[part]
        return target

    def body(self, schema: Any, d: int, *, typed: bool = False) -> list[str]:
        """Statements that ``return False`` unless ``x{d}`` certainly satisfies ``schema``
        (``typed``: ``t{d}`` already holds ``type(x{d})``)."""
        if d > self.MAX_DEPTH:
            raise Unsupported("schema nested too deep")
        if schema is True or schema == {}:
            return []
        if schema is False:
            return ["return False"]
        if not isinstance(schema, Mapping):
            raise Unsupported(f"schema is a {type(schema).__name__}")
        out = [] if typed else [f"t{d} = type(x{d})"]
        known = None  # the one JSON type x{d} is known to have once the type test passed
        if "type" in schema:  # an exact type test also rules out non-JSON types
            out += self.keyword("type", schema["type"], schema, d, None)
            if isinstance(schema["type"], str):
                known = schema["type"]
        else:
            out += [f"if t{d} not in _PLAIN:", "    return False"]
        for key, value in schema.items():
            if key not in _ANNOTATIONS and key != "type":
                out += self.keyword(key, value, schema, d, known)
        return out

    def keyword(self, key: str, value: Any, schema: Mapping[str, Any], d: int,
                known: str | None) -> list[str]:
        x, t = f"x{d}", f"t{d}"

        def only(kind: str, test: str) -> str:
            """``test`` guarded by "x is of JSON type ``kind``" unless that is known."""
            if known == kind or (kind == "number" and known == "integer"):
                return test
            guard = _TYPES[kind].format(x=x, t=t)
            return f"{guard} and {test}" if kind != "number" else f"({guard}) and {test}"

        if key == "type":
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not names or any(n not in _TYPES for n in names):
                raise Unsupported(f"type {value!r}")
            test = " or ".join(_TYPES[n].format(x=x, t=t) for n in names)
            return [f"if not ({test}):", "    return False"]
        if key == "properties":
            if not isinstance(value, Mapping):
                raise Unsupported("properties")
            lines = []
            for prop, sub in value.items():
                k = self.const(prop, "_k")
                inner = self.body(sub, d + 1)
                if inner:
                    lines += [f"x{d + 1} = {x}.get({k}, _MISSING)",
                              f"if x{d + 1} is not _MISSING:"]
                    lines += [f"    {ln}" for ln in inner]
            if not lines or known == "object":
                return lines
            return [f"if {t} is dict:"] + [f"    {ln}" for ln in lines]
        if key == "required":
            req = self.required(value)
            return [f"if {only('object', f'not {req}.issubset({x}.keys())')}:",
                    "    return False"]
        if key in ("oneOf", "anyOf"):
            if not isinstance(value, list) or not value:
                raise Unsupported(key)
            branches = []
            for sub in value:
                if not isinstance(sub, Mapping) or set(sub) - _ANNOTATIONS - {"required"}:
                    raise Unsupported(f"{key} with more than 'required' in a branch")
                branches.append(self.required(sub.get("required", [])))
            if known == "object":
                hits = " + ".join(f"{b}.issubset({x}.keys())" for b in branches)
            else:
                hits = " + ".join(f"({t} is not dict or {b}.issubset({x}.keys()))"
                                  for b in branches)
            cmp = "== 1" if key == "oneOf" else ">= 1"
            return [f"if not ({hits}) {cmp}:", "    return False"]
        if key == "$ref":
            if not isinstance(value, str) or value in self.active_refs:
                raise Unsupported("recursive or malformed $ref")
            self.active_refs.append(value)
            try:  # the referenced schema applies to the same value: same variables
                return self.body(self.resolve(value), d, typed=True)
            finally:
                self.active_refs.pop()
        if key == "items":
            if "prefixItems" in schema:
                raise Unsupported("prefixItems")
            inner = self.body(value, d + 1)
            if not inner:
                return []
            loop = [f"for x{d + 1} in {x}:"] + [f"    {ln}" for ln in inner]
            if known == "array":
                return loop
            return [f"if {t} is list:"] + [f"    {ln}" for ln in loop]
        if key in ("minItems", "maxItems", "minLength", "maxLength"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise Unsupported(key)
            kind = "array" if key.endswith("Items") else "string"
            op = "<" if key.startswith("min") else ">"
            return [f"if {only(kind, f'len({x}) {op} {value}')}:", "    return False"]
        if key in ("minimum", "maximum"):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise Unsupported(key)
            op = "<" if key == "minimum" else ">"
            return [f"if {only('number', f'{x} {op} {value!r}')}:", "    return False"]
        if key == "pattern":
            if not isinstance(value, str):
                raise Unsupported("pattern")
            return [f"if {only('string', self.memo_test(re.compile(value).search, x))}:",
                    "    return False"]
        if key == "format":
            check = self.formats.get(value) if isinstance(value, str) else None
            if check is None:
                raise Unsupported(f"format {value!r}")
            return [f"if {only('string', self.memo_test(check, x))}:", "    return False"]
        raise Unsupported(f"keyword {key!r}")

    def memo_test(self, fn: Callable[[str], object], x: str) -> str:
        """An expression true when the string ``x`` fails ``fn`` (a pattern's search or a
        format check). Strings that passed are remembered (the same dates, names, country
        and version recur across a stream), so a repeat costs one dict lookup."""
        passed: dict[str, bool] = {}

        def check(value: str) -> bool:
            ok = bool(fn(value))
            if ok:
                if len(passed) >= _MEMO_SIZE:
                    passed.clear()
                passed[value] = True
            return ok

        seen, run = self.const(passed, "_seen"), self.const(check, "_chk")
        return f"not ({seen}.get({x}) or {run}({x}))"

    def required(self, value: Any) -> str:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise Unsupported("required")
        return self.const(frozenset(value), "_req")


def compile_checker(schema: Mapping[str, Any],
                    formats: Mapping[str, Callable[[Any], bool]]) -> Callable[[Any], bool]:
    """Compile a JSON schema into ``check(instance) -> bool`` ("certainly valid").

    ``formats`` maps the asserted format names to their checks (the same functions the
    jsonschema validator uses). Raises :class:`Unsupported` when the schema needs anything
    the compiler cannot decide exactly.
    """
    c = _Compiler(schema, formats)
    body = c.body(schema, 0)
    source = "def check(x0):\n" + "".join(f"    {ln}\n" for ln in body) + "    return True\n"
    namespace = dict(c.env)
    exec(compile(source, "<vaxqr.schemafast>", "exec"), namespace)
    fn: Callable[[Any], bool] = namespace["check"]
    return fn
