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
* patterns run with :func:`re.search` as ECMA-262 reads them (:func:`ecma_regex`, as the
  validator of :mod:`vaxqr.schemas` does too), and lengths count code points;
* a property the schema requires is read as ``x["k"]``: when it is missing, the ``KeyError``
  makes the answer ``False`` (the ``required`` test itself is then not repeated).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from functools import lru_cache
from typing import Any

__all__ = [
    "Unsupported",
    "build",
    "checker_source",
    "compile_checker",
    "ecma_regex",
    "generator_text",
    "is_date",
    "module_source",
]

# Keywords that only annotate (never change a verdict in draft 2020-12 without a vocabulary
# that asserts them); "valueset-uri" is the DCC schemas' own annotation.
_ANNOTATIONS = frozenset({
    "$schema", "$id", "$comment", "$defs", "title", "description", "examples",
    "valueset-uri", "deprecated", "readOnly", "writeOnly", "default",
})
_CLASSES = {"object": "dict", "array": "list", "string": "str", "integer": "int",
            "boolean": "bool"}
_TYPES = {
    "object": "{t} is dict", "array": "{t} is list", "string": "{t} is str",
    "integer": "{t} is int", "number": "({t} is int or {t} is float)", "boolean": "{t} is bool",
    "null": "{x} is None",
}
_PLAIN = (dict, list, str, int, float, bool, type(None))
_MEMO_SIZE = 4096  # strings remembered per pattern or format
_PAIRED = {"minItems": "maxItems", "maxItems": "minItems", "minLength": "maxLength",
           "maxLength": "minLength"}
# keywords tested before the others (order never changes a verdict: all must hold)
_ORDER = {"minItems": 0, "maxItems": 0, "minLength": 0, "maxLength": 0, "minimum": 0,
          "maximum": 0, "required": 0, "oneOf": 0, "anyOf": 0}
# jsonschema's own ``date`` format check (jsonschema/_format.py ``is_date``).
_RE_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)


# ECMA-262 line terminators: what "." does not match there (Python's "." excludes only \n).
_NOT_LINE_END = "[^\\n\\r\\u2028\\u2029]"


@lru_cache(maxsize=256)
def ecma_regex(pattern: str) -> re.Pattern[str]:
    """A JSON Schema ``pattern`` (ECMA-262 syntax) compiled to mean what it means there.

    Python's ``re`` reads the same text differently in three ways that let invalid values
    through: ``$`` also matches before a final newline (``"NGUYEN\\n"`` matched
    ``^[A-Z<]*$``), ``\\d`` and ``\\w`` match any Unicode digit or letter (``"١٩٩٠"`` is
    four digits), and ``.`` matches ``\\r``, U+2028 and U+2029. So ``$`` outside a class
    becomes ``\\Z``, ``.`` outside a class excludes every ECMA line terminator, and the
    pattern is compiled with :data:`re.ASCII`. Raises :class:`Unsupported` for what this
    cannot translate exactly (a backreference-like escape, a Python-only construct).
    """
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise Unsupported("pattern ends with a backslash")
            nxt = pattern[i + 1]
            if nxt.isdigit() or nxt in "AZzGk":  # backreferences, Python-only anchors
                raise Unsupported(f"pattern escape \\{nxt}")
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            elif c == "[":
                out.append("\\[")  # literal in ECMA; a nested-set warning in Python
                i += 1
                continue
            out.append(c)
        elif c == "[":
            in_class = True
            out.append(c)
            if pattern.startswith("^", i + 1):
                out.append("^")
                i += 1
            if pattern.startswith("]", i + 1):  # "[]" / "[^]": ECMA's empty classes
                raise Unsupported("empty character class")
        elif c == "$":
            out.append("\\Z")
        elif c == ".":
            out.append(_NOT_LINE_END)
        elif c == "(" and pattern.startswith("(?P", i):
            raise Unsupported("Python named group")
        else:
            out.append(c)
        i += 1
    if in_class:
        raise Unsupported("unterminated character class")
    try:
        return re.compile("".join(out), re.ASCII)
    except re.error as exc:
        raise Unsupported(f"pattern {pattern!r}: {exc}") from exc


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
    """Generates one Python function with every subschema (and ``$ref``) inlined.

    The shape of the generated code is chosen for CPython: property names are literals,
    a required property is read with ``x["k"]`` (a missing one raises ``KeyError``, which
    the function turns into ``False``), an optional one with ``"k" in x``, a type test is
    ``type(x) is not str`` with no variable when the schema names one type, and the other
    constants (memo sets, checks, numbers) are closure variables, not globals.
    """

    MAX_DEPTH = 32

    def __init__(self, root: Mapping[str, Any], formats: Mapping[str, Callable[[Any], bool]]):
        self.root = root
        self.formats = formats
        self.env: dict[str, Any] = {"_PLAIN": _PLAIN}
        self.counter = 0
        self.active_refs: list[str] = []

    def const(self, value: Any, prefix: str) -> str:
        self.counter += 1
        name = f"{prefix}{self.counter}"
        self.env[name] = value
        return name

    def literal(self, value: Any) -> str:
        """A Python literal for a property name or a limit (a closure constant otherwise)."""
        if type(value) is str or (type(value) is int and abs(value) < 2**62):
            return repr(value)
        if type(value) is float and math.isfinite(value):
            return repr(value)
        return self.const(value, "_c")

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

    def body(self, schema: Any, d: int) -> list[str]:
        """Statements that ``return False`` unless ``x{d}`` certainly satisfies ``schema``."""
        if d > self.MAX_DEPTH:
            raise Unsupported("schema nested too deep")
        if schema is True or schema == {}:
            return []
        if schema is False:
            return ["return False"]
        if not isinstance(schema, Mapping):
            raise Unsupported(f"schema is a {type(schema).__name__}")
        ref = schema.get("$ref")
        if ref is not None and not (set(schema) - _ANNOTATIONS - {"$ref"}):
            return self.ref(ref, d)  # a bare $ref: the target, on the same variable
        x, t = f"x{d}", f"t{d}"
        out: list[str] = []
        known = None  # the one JSON type x{d} is known to have once the type test passed
        kind = schema.get("type")
        if isinstance(kind, str) and kind in _CLASSES:
            out += [f"if type({x}) is not {_CLASSES[kind]}:", "    return False"]
            known = kind
        else:
            out.append(f"{t} = type({x})")
            if "type" in schema:
                out += self.keyword("type", kind, schema, d, None)
            else:  # an exact type test also rules out non-JSON types
                out += [f"if {t} not in _PLAIN:", "    return False"]
        keys = [k for k in schema if k not in _ANNOTATIONS and k != "type"]
        keys.sort(key=lambda k: _ORDER.get(k, 1))  # cheap tests first; all must hold
        for key in keys:
            out += self.keyword(key, schema[key], schema, d, known)
        return out

    def present(self, schema: Mapping[str, Any]) -> set[str]:
        """Names that must be present when ``schema``'s ``required``/``oneOf``/``anyOf``
        (compiled as well) hold: those may be read with ``x["k"]``."""
        names = set(self.names(schema.get("required", [])))
        for key in ("oneOf", "anyOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches and all(
                    isinstance(b, Mapping) for b in branches):
                names |= set.intersection(
                    *(set(self.names(b.get("required", []))) for b in branches))
        return names

    def trivial(self, schema: Any) -> bool:
        """Whether :meth:`body` compiles ``schema`` to no statement at all."""
        if schema is True or schema == {}:
            return True
        if isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str) and not (
                set(schema) - _ANNOTATIONS - {"$ref"}) and schema["$ref"] not in self.active_refs:
            self.active_refs.append(schema["$ref"])
            try:
                return self.trivial(self.resolve(schema["$ref"]))
            finally:
                self.active_refs.pop()
        return False

    def ref(self, value: Any, d: int) -> list[str]:
        if not isinstance(value, str) or value in self.active_refs:
            raise Unsupported("recursive or malformed $ref")
        self.active_refs.append(value)
        try:
            return self.body(self.resolve(value), d)
        finally:
            self.active_refs.pop()

    def keyword(self, key: str, value: Any, schema: Mapping[str, Any], d: int,
                known: str | None) -> list[str]:
        x, t = f"x{d}", f"t{d}"

        def applies(kind: str) -> bool | None:
            """True: x is known to be of JSON type ``kind``; False: known not to be (the
            keyword does not apply); None: test at run time."""
            if known is None:
                return None
            return known == kind or (kind == "number" and known == "integer")

        def guarded(kind: str, lines: list[str]) -> list[str]:
            a = applies(kind)
            if a is False or not lines:
                return []
            if a:
                return lines
            guard = _TYPES[kind].format(x=x, t=t)
            return [f"if {guard}:"] + [f"    {ln}" for ln in lines]

        if key == "type":
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not names or any(n not in _TYPES for n in names):
                raise Unsupported(f"type {value!r}")
            test = " or ".join(_TYPES[n].format(x=x, t=t) for n in names)
            return [f"if not ({test}):", "    return False"]
        if key == "properties":
            if not isinstance(value, Mapping):
                raise Unsupported("properties")
            required = self.present(schema) if known == "object" else set()
            lines: list[str] = []
            for prop, sub in value.items():
                if not isinstance(prop, str):
                    raise Unsupported("properties")
                inner = self.body(sub, d + 1)
                if not inner:
                    continue
                k = self.literal(prop)
                if prop in required:  # present, or "required" fails: KeyError -> False
                    lines += [f"x{d + 1} = {x}[{k}]", *inner]
                else:
                    lines += [f"if {k} in {x}:", f"    x{d + 1} = {x}[{k}]"]
                    lines += [f"    {ln}" for ln in inner]
            return guarded("object", lines)
        if key == "required":
            names = self.names(value)
            if known == "object":  # those with a subschema are read by "properties"
                props = schema.get("properties")
                read = {p for p in names if isinstance(props, Mapping) and p in props
                        and not self.trivial(props[p])}
                names = [p for p in names if p not in read]
            if not names:
                return []
            test = " and ".join(f"{self.literal(p)} in {x}" for p in names)
            return guarded("object", [f"if not ({test}):", "    return False"])
        if key in ("oneOf", "anyOf"):
            if not isinstance(value, list) or not value:
                raise Unsupported(key)
            branches = []
            for sub in value:
                if not isinstance(sub, Mapping) or set(sub) - _ANNOTATIONS - {"required"}:
                    raise Unsupported(f"{key} with more than 'required' in a branch")
                branches.append(set(self.names(sub.get("required", []))))
            # every branch needs the common names; the count is decided by the rest
            common = set.intersection(*branches)
            tests = [f"{self.literal(p)} in {x}" for p in sorted(common)]
            hits = []
            for b in branches:
                rest = sorted(b - common)
                hits.append("(" + (" and ".join(f"{self.literal(p)} in {x}" for p in rest)
                                   or "True") + ")")
            cmp = "== 1" if key == "oneOf" else ">= 1"
            tests.append(f"{' + '.join(hits)} {cmp}")
            return guarded("object", [f"if not ({' and '.join(tests)}):", "    return False"])
        if key == "$ref":
            return self.ref(value, d)  # the target applies to the same value as well
        if key == "items":
            if "prefixItems" in schema:
                raise Unsupported("prefixItems")
            inner = self.body(value, d + 1)
            if not inner:
                return []
            return guarded("array", [f"for x{d + 1} in {x}:"] + [f"    {ln}" for ln in inner])
        if key in ("minItems", "maxItems", "minLength", "maxLength"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise Unsupported(key)
            kind = "array" if key.endswith("Items") else "string"
            op = "<" if key.startswith("min") else ">"
            other = schema.get(_PAIRED[key])
            if type(other) is int and other == value:  # minimum = maximum: one test
                if op == ">":
                    return []  # tested with the minimum
                op = "!="
            return guarded(kind, [f"if len({x}) {op} {self.literal(value)}:",
                                  "    return False"])
        if key in ("minimum", "maximum"):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise Unsupported(key)
            op = "<" if key == "minimum" else ">"
            return guarded("number", [f"if {x} {op} {self.literal(value)}:", "    return False"])
        if key == "pattern":
            if not isinstance(value, str):
                raise Unsupported("pattern")
            return guarded("string", self.memo_test(ecma_regex(value).search, x))
        if key == "format":
            check = self.formats.get(value) if isinstance(value, str) else None
            if check is None:
                raise Unsupported(f"format {value!r}")
            return guarded("string", self.memo_test(check, x))
        raise Unsupported(f"keyword {key!r}")

    def memo_test(self, fn: Callable[[str], object], x: str) -> list[str]:
        """Statements failing unless the string ``x`` passes ``fn`` (a pattern's search or a
        format check). Strings that passed are remembered (the same dates, names, country
        and version recur across a stream), so a repeat costs one set lookup."""
        passed: set[str] = set()

        def check(value: str) -> bool:
            ok = bool(fn(value))
            if ok:
                if len(passed) >= _MEMO_SIZE:
                    passed.clear()
                passed.add(value)
            return ok

        seen, run = self.const(passed, "_seen"), self.const(check, "_chk")
        return [f"if {x} not in {seen} and not {run}({x}):", "    return False"]

    def names(self, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise Unsupported("required")
        return list(value)


def compile_checker(schema: Mapping[str, Any],
                    formats: Mapping[str, Callable[[Any], bool]],
                    *, also: Sequence[Mapping[str, Any]] = ()) -> Callable[[Any], bool]:
    """Compile a JSON schema into ``check(instance) -> bool`` ("certainly valid").

    ``formats`` maps the asserted format names to their checks (the same functions the
    jsonschema validator uses). ``also``: more schemas the instance must satisfy as well
    (their ``$ref`` s resolve in ``schema``). Raises :class:`Unsupported` when a schema
    needs anything the compiler cannot decide exactly.
    """
    return build(*checker_source(schema, formats, also=also))


def checker_source(schema: Mapping[str, Any], formats: Mapping[str, Callable[[Any], bool]],
                   *, also: Sequence[Mapping[str, Any]] = ()) -> tuple[str, dict[str, Any]]:
    """The source of ``_make(<constants>)`` returning the checker, and its constants."""
    c = _Compiler(schema, formats)
    body = c.body(schema, 0)
    for extra in also:
        body += c.body(extra, 0)
    names = sorted(c.env)
    source = (f"def _make({', '.join(names)}):\n"
              "    def check(x0):\n"
              "        try:\n"
              + "".join(f"            {ln}\n" for ln in body)
              + "        except KeyError:  # a required property is missing\n"
              "            return False\n"
              "        return True\n"
              "    return check\n")
    return source, c.env


def build(source: str, env: Mapping[str, Any]) -> Callable[[Any], bool]:
    """The checker of a :func:`checker_source` source, compiled and run here (``exec``)."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<vaxqr.schemafast>", "exec"), namespace)
    fn: Callable[[Any], bool] = namespace["_make"](**env)
    return fn


def generator_text() -> str | None:
    """This module's own source (the generator and :func:`build`, the exec path), or None
    when it cannot be read: a compiled checker is used only if it was generated by exactly
    this text (:func:`module_source`)."""
    try:
        with open(__file__, encoding="utf-8") as f:
            return f.read()
    except (OSError, ValueError):
        return None


_HEADER = "def _make("
_INNER = "    def check(x0):\n"


def _typed(source: str, name: str) -> str:
    """``source`` (from :func:`checker_source`) as the annotated factory ``name``: the same
    statements; every constant and the instance are ``Any`` (mypyc narrows them only after
    an exact ``type(x) is ...`` test, as the code is written)."""
    header, _, rest = source.partition("\n")
    if not (header.startswith(_HEADER) and header.endswith("):") and rest.startswith(_INNER)):
        raise ValueError("not a checker source")
    params = [p for p in header[len(_HEADER):-2].split(", ") if p]
    return (f"def {name}({', '.join(f'{p}: Any' for p in params)}) -> Callable[[Any], bool]:\n"
            "    def check(x0: Any) -> bool:\n" + rest[len(_INNER):])


def module_source(sources: Mapping[str, str]) -> str:
    """The text of a module holding every checker source of ``sources`` (label -> source,
    e.g. schema version -> :func:`checker_source`'s source) as an annotated factory, for
    mypyc. ``MAKERS`` maps each source itself to its factory and ``GENERATOR`` is this
    module's text: a factory is only ever found for exactly the source it was made from,
    by exactly the generator that made it (plain string comparisons: no hash module to
    import on the one-shot path)."""
    generator = generator_text()
    if generator is None:
        raise ValueError("the generator's source cannot be read")
    labels: dict[str, list[str]] = {}
    for label, source in sources.items():
        labels.setdefault(source, []).append(label)
    parts = ['"""Generated by scripts/build_native.py from vaxqr/schemafast.py and the shipped',
             "DCC schemas (vaxqr/schemas.py), compiled with mypyc. Do not edit: regenerated",
             'by every build, never committed."""', "",
             "from __future__ import annotations", "",
             "from collections.abc import Callable", "from typing import Any", "",
             f"GENERATOR = {generator!r}", ""]
    makers = []
    for i, (source, names) in enumerate(labels.items()):
        name = f"_make_{i}"
        parts += ["", f"# {', '.join(names)}", _typed(source, name)]
        makers.append(f"    {source!r}: {name},")
    parts += ["", "MAKERS: dict[str, Callable[..., Callable[[Any], bool]]] = {", *makers, "}", ""]
    return "\n".join(parts)
