"""Tests for vaxqr.schemas: shipped DCC schemas, validate_dcc, EU value sets."""

from __future__ import annotations

import copy
import json
import os
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import validators

from vaxqr import schemas
from vaxqr.errors import ValidationError, VaxqrError
from vaxqr.schemas import (
    SUPPORTED_VERSIONS,
    VALUESET_NAMES,
    is_known_code,
    resolve_version,
    validate_dcc,
    valueset,
)

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = Path(os.environ.get("VAXQR_DCC_TESTDATA", ROOT.parent / "shared" / "testdata" / "dcc"))

VALID_130: dict[str, Any] = {
    "ver": "1.3.0",
    "nam": {"fn": "Nguyễn", "fnt": "NGUYEN", "gn": "Thị Đào", "gnt": "THI<DAO"},
    "dob": "1964-01-01",
    "v": [
        {
            "tg": "840539006",
            "vp": "1119349007",
            "mp": "EU/1/20/1528",
            "ma": "ORG-100030215",
            "dn": 2,
            "sd": 2,
            "dt": "2021-09-01",
            "co": "VN",
            "is": "Ministry of Health of Viet Nam",
            "ci": "URN:UVCI:01:VN:KG/123/456#Z",
        }
    ],
}

# Vietnam's eight vaccines (standards.md §1.13, vietnam.md §4.2): product code -> MAH code.
VIETNAM_PRODUCTS = {
    "EU/1/20/1528": "ORG-100030215",  # Pfizer-BioNTech, Comirnaty
    "EU/1/20/1507": "ORG-100031184",  # Moderna, Spikevax
    "EU/1/21/1529": "ORG-100001699",  # AstraZeneca, Vaxzevria
    "EU/1/20/1525": "ORG-100001417",  # Janssen, Jcovden
    "Sputnik-V": "Gamaleya-Research-Institute",
    "BBIBP-CorV": "ORG-100020693",  # Vero Cell (Sinopharm Beijing)
    "Hayat-Vax": "ORG-100023050",
    "Abdala": "CIGB",
}


def dcc(**changes: Any) -> dict[str, Any]:
    """A deep copy of the valid 1.3.0 vaccination DCC with top-level keys replaced."""
    out = copy.deepcopy(VALID_130)
    out.update(copy.deepcopy(changes))
    return out


def schema_file(version: str) -> dict[str, Any]:
    text = resources.files("vaxqr").joinpath("data", "schemas", f"DCC-{version}.json").read_text(
        encoding="utf-8"
    )
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def all_refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in all_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in all_refs(v)]
    return []


# --- shipped schema files -------------------------------------------------------------


def test_supported_versions_match_shipped_files() -> None:
    shipped = sorted(
        p.name[len("DCC-") : -len(".json")]
        for p in resources.files("vaxqr").joinpath("data", "schemas").iterdir()
        if p.name.startswith("DCC-") and p.name.endswith(".json")
    )
    assert shipped == sorted(SUPPORTED_VERSIONS)
    for required in ("1.0.0", "1.0.1", "1.1.0", "1.2.1", "1.3.0"):
        assert required in SUPPORTED_VERSIONS
    assert SUPPORTED_VERSIONS[-1].startswith("1.3.")


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_shipped_schema_is_self_contained_and_valid(version: str) -> None:
    schema = schema_file(version)
    assert schema["$comment"] == f"Schema version {version}"
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    refs = all_refs(schema)
    assert refs, "every DCC schema references its $defs"
    for ref in refs:
        assert ref.startswith("#/$defs/"), ref
        assert ref.removeprefix("#/$defs/") in schema["$defs"], ref


def test_sources_files_name_every_version_and_valueset() -> None:
    # SOURCES.md is a repository document (package data ships only *.json), so read it there.
    data = ROOT / "vaxqr" / "data"
    schema_sources = data.joinpath("schemas", "SOURCES.md").read_text(encoding="utf-8")
    for version in SUPPORTED_VERSIONS:
        assert f"DCC-{version}.json" in schema_sources
    assert re.search(r"\b[0-9a-f]{40}\b", schema_sources)
    vs_sources = data.joinpath("valuesets", "SOURCES.md").read_text(encoding="utf-8")
    for name in VALUESET_NAMES:
        assert f"{name}.json" in vs_sources


# --- validate_dcc: valid input ---------------------------------------------------------


def test_valid_130_vaccination_passes() -> None:
    assert validate_dcc(VALID_130) == []


@pytest.mark.parametrize("ver", ["1.3.0", "1.3.2", "1.3.3"])
def test_valid_vaccination_passes_for_each_13x(ver: str) -> None:
    assert validate_dcc(dcc(ver=ver)) == []


def test_100_dcc_validates_against_100() -> None:
    old = dcc(ver="1.0.0")
    assert resolve_version("1.0.0") == "1.0.0"
    assert validate_dcc(old) == []
    # 1.0.0 still required a full date of birth (format: date) ...
    assert validate_dcc(dcc(ver="1.0.0", dob="1964")) == [
        "dob: '1964' does not match '(19|20)\\d{2}-\\d{2}-\\d{2}'",
        "dob: '1964' is not a 'date'",
    ]
    assert validate_dcc(dcc(ver="1.0.0", dob="1964-01-01T00:00:00")) == [
        "dob: '1964-01-01T00:00:00' is not a 'date'"
    ]
    # ... and capped names at 50 characters, unlike 1.3.0's 80.
    long_name = {"fn": "A" * 51, "fnt": "A"}
    assert validate_dcc(dcc(ver="1.0.0", nam=long_name)) == [
        f"nam.fn: '{'A' * 51}' is too long (51 characters, at most 50 allowed)"
    ]
    assert validate_dcc(dcc(nam=long_name)) == []


def test_partial_and_empty_dob_accepted_by_130() -> None:
    for dob in ("1964", "1964-01", ""):
        assert validate_dcc(dcc(dob=dob)) == [], dob


def test_only_gnt_is_enough_from_132_on() -> None:
    only_gnt = {"gn": "Đào", "gnt": "DAO"}
    assert validate_dcc(dcc(ver="1.3.2", nam=only_gnt)) == []
    assert validate_dcc(dcc(ver="1.3.0", nam=only_gnt)) == ["nam.fnt: required property is missing"]
    assert validate_dcc(dcc(ver="1.3.3", nam={"fn": "Nguyễn"})) == [
        "nam: at least one of 'fnt', 'gnt' is required"
    ]


# --- validate_dcc: each failure gives a useful, path-first message ---------------------


def test_dob_with_time_part_fails() -> None:
    errors = validate_dcc(dcc(dob="1964-01-01T00:00:00"))
    assert len(errors) == 1
    assert errors[0].startswith("dob: '1964-01-01T00:00:00' does not match '^((19|20)")


def test_two_vaccination_entries_fail() -> None:
    errors = validate_dcc(dcc(v=VALID_130["v"] * 2))
    assert errors == ["v: must contain exactly one entry (found 2)"]


def test_missing_nam_fails() -> None:
    body = dcc()
    del body["nam"]
    assert validate_dcc(body) == ["nam: required property is missing"]
    body["ver"] = "1.0.0"  # pre-1.3 schemas have a plain top-level "required"
    assert validate_dcc(body) == ["nam: required property is missing"]


def test_lowercase_fnt_fails() -> None:
    errors = validate_dcc(dcc(nam={"fn": "Nguy", "fnt": "Nguy"}))
    assert errors == ["nam.fnt: 'Nguy' does not match '^[A-Z<]*$'"]


def test_dose_number_as_string_fails() -> None:
    entry = dict(VALID_130["v"][0], dn="2")
    assert validate_dcc(dcc(v=[entry])) == ["v[0].dn: '2' is not of type 'integer'"]


def test_81_character_fn_fails() -> None:
    errors = validate_dcc(dcc(nam={"fn": "N" * 81, "fnt": "NGUYEN"}))
    assert errors == [f"nam.fn: '{'N' * 81}' is too long (81 characters, at most 80 allowed)"]
    assert validate_dcc(dcc(nam={"fn": "N" * 80, "fnt": "NGUYEN"})) == []


def test_missing_ver_fails() -> None:
    body = dcc()
    del body["ver"]
    errors = validate_dcc(body)
    assert len(errors) == 1
    assert errors[0].startswith("ver: required property is missing")
    assert "1.3.0" in errors[0]


def test_unknown_ver_fails() -> None:
    errors = validate_dcc(dcc(ver="9.9.9"))
    assert len(errors) == 1
    assert errors[0].startswith("ver: unsupported schema version '9.9.9'")


@pytest.mark.parametrize("ver", ["1.3", "v1.3.0", "1.3.0-rc1", "", 130, None])
def test_malformed_ver_fails(ver: object) -> None:
    errors = validate_dcc(dcc(ver=ver))
    assert len(errors) == 1
    assert errors[0].startswith("ver: ")
    assert "MAJOR.MINOR.PATCH" in errors[0]


def test_group_rules() -> None:
    both = dcc(t=[{"tg": "840539006"}])
    msg = "(root): must contain exactly one of 'v', 't', 'r' (found 'v', 't')"
    assert msg in validate_dcc(both)
    none = dcc()
    del none["v"]
    assert validate_dcc(none) == ["(root): must contain exactly one of 'v', 't', 'r' (found none)"]
    assert validate_dcc(dcc(v=[])) == ["v: must contain exactly one entry (found 0)"]
    # Schemas before 1.3.0 allow several entries; vaxqr still rejects them.
    assert validate_dcc(dcc(ver="1.2.1", v=VALID_130["v"] * 2)) == [
        "v: must contain exactly one entry (found 2)"
    ]


def test_format_date_and_date_time_are_asserted() -> None:
    entry = dict(VALID_130["v"][0], dt="2021-02-30")
    assert validate_dcc(dcc(v=[entry])) == ["v[0].dt: '2021-02-30' is not a 'date'"]
    test_entry = {
        "tg": "840539006",
        "tt": "LP6464-4",
        "sc": "2021-06-01T10:00:00Z",
        "tr": "260415000",
        "tc": "Kien Giang CDC",
        "co": "VN",
        "is": "Ministry of Health of Viet Nam",
        "ci": "URN:UVCI:01:VN:KG/1/2#3",
    }
    body = dcc()
    del body["v"]
    assert validate_dcc(dict(body, t=[test_entry])) == []
    bad_times = (
        "2021-06-01T10:00:00",  # no offset
        "2021-06-01",
        "2021-13-01T10:00:00Z",
        "2021-06-01T24:00:00Z",
    )
    for bad in bad_times:
        errors = validate_dcc(dict(body, t=[dict(test_entry, sc=bad)]))
        assert errors == [f"t[0].sc: '{bad}' is not a 'date-time'"], bad
    for good in ("2021-06-01T10:00:00.110Z", "2021-06-16T12:50:38+03:00", "2021-06-01t10:00:00z"):
        assert validate_dcc(dict(body, t=[dict(test_entry, sc=good)])) == [], good


def test_errors_are_sorted_and_unique() -> None:
    entry = dict(VALID_130["v"][0], dn="2", sd=0)
    errors = validate_dcc(dcc(v=[entry], nam={"fnt": "x"}))
    assert errors == sorted(set(errors))
    assert errors == [
        "nam.fnt: 'x' does not match '^[A-Z<]*$'",
        "v[0].dn: '2' is not of type 'integer'",
        "v[0].sd: 0 is less than the minimum of 1",
    ]


@pytest.mark.parametrize("value", [None, [VALID_130], "HC1:...", 42])
def test_non_object_input_is_reported_not_raised(value: object) -> None:
    errors = validate_dcc(value)
    assert len(errors) == 1
    assert errors[0].startswith("(root): a DCC must be a JSON object")


def test_resolve_version() -> None:
    assert resolve_version("1.3.0") == "1.3.0"
    assert resolve_version("1.3.5") == "1.3.3"  # unknown patch: newest of the minor
    assert resolve_version("1.3.1") == "1.3.3"
    assert resolve_version("1.0.4") == "1.0.1"  # IE test data uses "1.0.4"
    assert resolve_version("1.2.9") == "1.2.1"
    assert resolve_version("1.4.0") is None
    assert resolve_version("9.9.9") is None
    assert resolve_version("1.3") is None
    assert resolve_version(None) is None


def test_unknown_patch_uses_newest_schema_of_its_minor() -> None:
    assert validate_dcc(dcc(ver="1.3.5")) == []
    assert validate_dcc(dcc(ver="1.3.5", nam={"gnt": "DAO"})) == []  # 1.3.3 rules


def test_validation_is_fast_after_warm_up() -> None:
    validate_dcc(VALID_130)
    n = 500
    start = time.perf_counter()
    for _ in range(n):
        validate_dcc(VALID_130)
    per_call = (time.perf_counter() - start) / n
    assert per_call < 0.005  # measured ~0.2 ms; generous bound for slow CI machines


def test_missing_package_data_raises_validation_error() -> None:
    with pytest.raises(ValidationError, match="missing or unreadable"):
        schemas._read_data("schemas", "DCC-0.0.0.json")


# --- EU test data (dgc-testdata) -------------------------------------------------------


def _testdata_json(rel: str) -> dict[str, Any]:
    path = TESTDATA / rel
    if not path.is_file():
        pytest.skip(f"EU DCC test data not found at {path}")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_testdata_dgc2_multiple_groups_fails() -> None:
    case = _testdata_json("common/2DCode/raw/DGC2.json")
    assert case["EXPECTEDRESULTS"]["EXPECTEDSCHEMAVALIDATION"] is False
    errors = validate_dcc(case["JSON"])
    assert "(root): must contain exactly one of 'v', 't', 'r' (found 'v', 't', 'r')" in errors


def test_testdata_ro2_two_entries_fails_known_defect() -> None:
    # Known defect of the data (README): flagged schema-valid, but holds two entries.
    case = _testdata_json("RO/2DCode/raw/2.json")
    assert validate_dcc(case["JSON"]) == ["v: must contain exactly one entry (found 2)"]


@pytest.mark.parametrize(
    "rel",
    ["AT/2DCode/raw/1.json", "DE/2DCode/raw/2.json", "IE/2DCode/Raw/2.json",
     "LI/2DCode/raw/3.json", "FR/2DCode/raw/DCC_Test_0001.json", "BE/2DCode/raw/4.json"],
)
def test_testdata_samples_of_each_version_pass(rel: str) -> None:
    case = _testdata_json(rel)
    assert case["EXPECTEDRESULTS"]["EXPECTEDSCHEMAVALIDATION"] is True
    assert validate_dcc(case["JSON"]) == []


# --- value sets ------------------------------------------------------------------------


def test_vietnam_products_and_holders_are_known() -> None:
    for product, holder in VIETNAM_PRODUCTS.items():
        assert is_known_code("vaccine-medicinal-product", product), product
        assert is_known_code("vaccine-mah-manf", holder), holder
    products = valueset("vaccine-medicinal-product")
    assert products["Hayat-Vax"]["display"] == "Hayat-Vax"
    assert products["Abdala"]["active"] is True


def test_vietnam_related_extra_codes_and_deprecated_codes_stay() -> None:
    # Sinopharm Wuhan and Covishield, and the deprecated Vero Cell id, remain readable.
    for code in ("WIBP-CorV", "Covishield", "Inactivated-SARS-CoV-2-Vero-Cell"):
        assert is_known_code("vaccine-medicinal-product", code), code
    products = valueset("vaccine-medicinal-product")
    assert products["Inactivated-SARS-CoV-2-Vero-Cell"]["active"] is False
    for code in ("Sinopharm-WIBP", "ORG-100010771", "ORG-100001981"):
        assert is_known_code("vaccine-mah-manf", code), code
    prophylaxis = valueset("vaccine-prophylaxis")
    for code in ("1119349007", "1119305005", "28531000087107", "29061000087103", "1157024006"):
        assert code in prophylaxis, code
    assert prophylaxis["J07BX03"]["active"] is False


def test_other_valuesets() -> None:
    assert is_known_code("disease-agent-targeted", "840539006")
    assert valueset("disease-agent-targeted")["840539006"]["display"] == "COVID-19"
    assert valueset("country-2-codes")["VN"]["display"] == "Viet Nam"
    assert is_known_code("country-2-codes", "XK")
    assert not is_known_code("country-2-codes", "XX")
    assert not is_known_code("vaccine-medicinal-product", "EU/1/99/9999")


@pytest.mark.parametrize("name", VALUESET_NAMES)
def test_every_valueset_has_uniform_entries(name: str) -> None:
    values = valueset(name)
    assert values
    for code, entry in values.items():
        assert isinstance(code, str) and code
        assert {"display", "lang", "active", "system", "version"} <= entry.keys(), code
        assert isinstance(entry["active"], bool)


def test_valueset_returns_a_copy() -> None:
    first = valueset("vaccine-medicinal-product")
    first["EU/1/20/1528"]["display"] = "changed"
    del first["Abdala"]
    second = valueset("vaccine-medicinal-product")
    assert second["EU/1/20/1528"]["display"] == "Comirnaty"
    assert is_known_code("vaccine-medicinal-product", "Abdala")


def test_unknown_valueset_raises_vaxqr_error() -> None:
    with pytest.raises(ValidationError, match="unknown value set"):
        valueset("vaccines")
    with pytest.raises(VaxqrError):
        is_known_code("no-such-set", "x")


# --- the fast pre-check (vaxqr.schemafast) never says "valid" when jsonschema does not ---


def _reference_valid(version: str, instance: object) -> bool:
    return not any(True for _ in schemas._validator(version).iter_errors(instance))


def _testdata_dccs() -> list[tuple[str, Any]]:
    found = []
    for path in sorted(TESTDATA.rglob("*.json")) if TESTDATA.is_dir() else []:
        try:
            case = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(case, dict) and isinstance(case.get("JSON"), dict):
            found.append((str(path.relative_to(TESTDATA)), case["JSON"]))
    return found


def test_fast_check_compiles_for_every_shipped_version() -> None:
    for version in SUPPORTED_VERSIONS:
        assert schemas._fast_check(version) is not None, version


def test_fast_check_agrees_with_jsonschema_on_the_testdata() -> None:
    cases = _testdata_dccs() + [("VALID_130", VALID_130)] + [
        (f"ver {v}", dcc(ver=v)) for v in SUPPORTED_VERSIONS]
    agree = 0
    for name, instance in cases:
        version = resolve_version(instance.get("ver"))
        if version is None:
            continue
        fast = schemas._fast_check(version)(instance)
        ref = _reference_valid(version, instance)
        assert not (fast and not ref), f"{name}: fast pre-check passed what jsonschema fails"
        agree += fast == ref
    assert agree >= 0.95 * len(cases), (agree, len(cases))


_LEAVES = [None, True, False, 0, 1, 2, -1, 2.0, 1.5, float("nan"), 10**20, "", " ", "A", "a",
           "NGUYEN<THI", "Nguyễn", "X" * 81, "2021-09-01", "2021-02-30", "2021-09-01T10:00:00Z",
           "2021-09-01T25:00:00Z", "2021-09-01\n", "١٩٩٠-٠١-٠١", "1990", "1990-01", "VN", "vn",
           "840539006", "URN:UVCI:01:VN:KG/123/456#Z", "EU/1/20/1528", [], {}, [{}], ["x"]]


def _mutants(base: dict[str, Any], rng: Any) -> Any:
    out = copy.deepcopy(base)
    for _ in range(rng.randint(1, 3)):
        node: Any = out
        path: list[Any] = []
        while isinstance(node, dict | list) and node and rng.random() < 0.75:
            key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
            path.append((node, key))
            node = node[key]
        if not path:
            out = copy.deepcopy(rng.choice([*_LEAVES, out]))  # never a shared leaf
            continue
        parent, key = path[-1]
        action = rng.random()
        if action < 0.15 and isinstance(parent, dict):
            del parent[key]
        elif action < 0.25 and isinstance(parent, dict):
            parent[rng.choice(["extra", "t", "r", "v", "ver", "dob", "nam"])] = copy.deepcopy(
                rng.choice(_LEAVES))
        elif action < 0.35 and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        else:
            parent[key] = copy.deepcopy(rng.choice(_LEAVES))
    return out


def test_fast_check_is_sound_on_mutated_dccs() -> None:
    import random

    rng = random.Random(2021)
    bases = [VALID_130, dcc(ver="1.3.3"), dcc(ver="1.0.0"), dcc(ver="1.2.1")] + [
        c for _, c in _testdata_dccs()[:60]]
    fast_valid = 0
    for i in range(6000):
        instance = _mutants(rng.choice(bases), rng)
        if not isinstance(instance, dict):
            continue
        version = resolve_version(instance.get("ver"))
        if version is None:
            continue
        fast = schemas._fast_check(version)(instance)
        if fast:
            fast_valid += 1
            assert _reference_valid(version, instance), (i, instance)
    assert fast_valid > 100  # the mutations reach the "certainly valid" answer too


def test_fast_check_sees_float_integers_and_subclasses_as_unsure() -> None:
    class Str(str):
        pass

    fast = schemas._fast_check("1.3.0")
    assert fast(VALID_130)
    with_float = dcc(v=[{**VALID_130["v"][0], "dn": 2.0}])
    assert not fast(with_float)
    assert validate_dcc(with_float) == []  # jsonschema decides, and it accepts 2.0
    assert not fast(dcc(dob=Str("1964-01-01")))
    assert not fast(dcc(v=tuple(VALID_130["v"])))


# --- validate_dcc's fast path: the v/t/r rule compiled in, the checker chosen by 'ver' ---


def _bases() -> list[dict[str, Any]]:
    return [VALID_130, dcc(ver="1.3.3"), dcc(ver="1.0.0"), dcc(ver="1.2.1"), dcc(ver="1.3.5"),
            dcc(ver="1.0.4")] + [c for _, c in _testdata_dccs()[:60]]


def test_fast_path_never_changes_validate_dcc() -> None:
    import random

    rng = random.Random(1964)
    bases = _bases()
    fast_valid = 0
    for i in range(4000):
        instance = _mutants(rng.choice(bases), rng)
        version = resolve_version(instance.get("ver")) if isinstance(instance, dict) else None
        full = schemas._problems(instance)  # jsonschema and the v/t/r rule, no fast path
        assert validate_dcc(instance) == full, (i, instance)
        if version is not None and schemas._fast_valid(version)(instance):
            fast_valid += 1
            assert full == [], (i, instance)
    assert fast_valid > 100


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(_bases()), rng=st.randoms(use_true_random=False))
def test_fast_path_is_sound_on_hypothesis_near_valid_dccs(base: dict[str, Any], rng: Any) -> None:
    instance = _mutants(base, rng)
    if not isinstance(instance, dict):
        return
    version = resolve_version(instance.get("ver"))
    if version is not None and schemas._fast_valid(version)(instance):
        assert schemas._problems(instance) == [], instance
        assert _reference_valid(version, instance)
    assert validate_dcc(instance) == schemas._problems(instance)


def test_fast_path_group_rule_for_every_version() -> None:
    for version in SUPPORTED_VERSIONS:
        fast = schemas._fast_valid(version)
        assert fast is not None, version
        body = dcc(ver=version)
        assert fast(body), version
        assert not fast(dict(body, v=VALID_130["v"] * 2)), version  # pre-1.3 schemas allow it
        assert not fast(dict(body, t=[])), version
        assert not fast({k: v for k, v in body.items() if k != "v"}), version
        assert schemas._fast_check(version)(dict(body, v=VALID_130["v"] * 2)) == (
            version < "1.3.0"), version


def test_fast_path_reports_missing_required_as_unsure() -> None:
    # a required property is read with x["k"]: a missing one is "unsure", never an error
    fast = schemas._fast_valid("1.3.0")
    for key in VALID_130["v"][0]:
        entry = {k: v for k, v in VALID_130["v"][0].items() if k != key}
        assert not fast(dcc(v=[entry])), key
        assert validate_dcc(dcc(v=[entry])) == [f"v[0].{key}: required property is missing"]


def test_version_cache_is_bounded_and_keeps_verdicts() -> None:
    for i in range(3 * schemas._MAX_VERS):
        ver = f"1.3.{i}" if i % 2 else f"7.{i}.0"
        errors = validate_dcc(dcc(ver=ver))
        assert errors == ([] if i % 2 else
                          [f"ver: unsupported schema version {ver!r} (supported: "
                           + ", ".join(SUPPORTED_VERSIONS) + ")"]), ver
        assert len(schemas._FAST_BY_VER) <= schemas._MAX_VERS
    assert validate_dcc(VALID_130) == []


def test_generated_checker_source_compiles_min_equal_max_once() -> None:
    from vaxqr.schemafast import checker_source, compile_checker

    schema = {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "string",
              "minLength": 1, "maxLength": 3}}
    source, _ = checker_source(schema, {})
    assert source.count("len(x0)") == 1 and "len(x0) != 2" in source
    check = compile_checker(schema, {})
    assert check(["a", "abc"])
    assert not check(["a"]) and not check(["a", "b", "c"]) and not check(["a", "abcd"])
    assert not check(["a", ""]) and not check(("a", "b"))


# --- the checkers compiled ahead of time (scripts/build_native.py) answer as the exec'd ones ---


def _exec_checker(version: str) -> Any:
    """The pre-check of validate_dcc for ``version`` as the exec path builds it."""
    from vaxqr.schemafast import build, checker_source

    return build(*checker_source(schema_file(version), schemas._FAST_FORMATS,
                                 also=[schemas._GROUP_RULE]))


def _compiled_or_skip() -> tuple[str, ...]:
    import vaxqr

    compiled = schemas.compiled_versions()
    if not compiled:
        if vaxqr.NATIVE_STATE == "native":
            pytest.fail("a native build is in use but no compiled schema pre-check is: "
                        "rebuild (make setup)")
        pytest.skip(f"no compiled schema pre-checks in use (NATIVE_STATE "
                    f"{vaxqr.NATIVE_STATE!r}): the exec'd ones are tested by the rest")
    return compiled


def test_validate_dcc_uses_the_compiled_checkers_of_a_native_build() -> None:
    import vaxqr

    compiled = schemas.compiled_versions()
    if vaxqr.NATIVE_STATE == "off":
        assert compiled == ()  # VAXQR_PURE: every checker is exec'd
    elif vaxqr.NATIVE_STATE == "native":
        assert compiled == tuple(schemas.checker_sources())
    for version in compiled:
        assert type(schemas._fast_valid(version)).__module__ == "vaxqr._schema_checkers"
    for version in set(SUPPORTED_VERSIONS) - set(compiled):
        assert type(schemas._fast_valid(version)).__name__ == "function"


def test_compiled_checkers_agree_with_the_exec_path_on_mutated_dccs() -> None:
    import random

    compiled = _compiled_or_skip()
    execd = {v: _exec_checker(v) for v in compiled}
    rng = random.Random(7)
    bases = [b for b in _bases() if resolve_version(b.get("ver")) in compiled]
    agree_valid = 0
    for i in range(6000):
        instance = _mutants(rng.choice(bases), rng)
        version = resolve_version(instance.get("ver")) if isinstance(instance, dict) else None
        for v in [version] if version in compiled else compiled:
            fast = schemas._fast_valid(v)(instance)
            assert fast == execd[v](instance), (i, v, instance)
            agree_valid += fast
    assert agree_valid > 100


_HUGE = [10**4000, -(10**4000), 2**63, 2**64 + 1, -(2**63) - 1, 2**62, 2**30]


class _Int(int):
    pass


class _Dict(dict):  # type: ignore[type-arg]
    pass


def _deep(n: int) -> Any:
    out: Any = []
    for _ in range(n):
        out = {"v": [out], "nam": out}
    return out


_HOSTILE_LEAVES = [*_HUGE, float("nan"), float("inf"), -0.0, 1e308, True, b"VN", bytearray(b"x"),
                   ("a",), {"a"}, frozenset(), _Int(1), _Dict(VALID_130["nam"]), object(),
                   "\udcff", "\x00" * 10_000, "A" * 1_000_000, {1: 2, (1, 2): 3, None: 4},
                   type, len, 3 + 4j, [_deep(50)] * 3, _deep(2000)]


def _hostile_dccs(deep: bool = True) -> list[Any]:
    out: list[Any] = [_Dict(VALID_130), {"ver": "1.3.0"}, {"ver": _Int(1)}]
    out += [_deep(5000)] if deep else []
    for version in SUPPORTED_VERSIONS:
        base = dcc(ver=version)
        entry = VALID_130["v"][0]
        for leaf in _HOSTILE_LEAVES if deep else _HOSTILE_LEAVES[:-3]:
            out.append(dict(base, v=[dict(entry, dn=leaf)]))
            out.append(dict(base, v=[dict(entry, sd=leaf, dn=leaf)]))
            out.append(dict(base, v=[dict(entry, co=leaf)]))
            out.append(dict(base, nam=dict(VALID_130["nam"], fnt=leaf)))
            out.append(dict(base, nam=leaf))
            out.append(dict(base, dob=leaf))
            out.append(dict(base, v=leaf))
            out.append(dict(base, v=[leaf]))
            out.append(dict.fromkeys(base, leaf))
    return out


def test_compiled_checkers_never_raise_on_hostile_input() -> None:
    """mypyc checks types at run time: a value of an unexpected type, a huge int or a deep
    structure must give the exec path's answer, never a TypeError or OverflowError."""
    compiled = _compiled_or_skip()
    execd = {v: _exec_checker(v) for v in compiled}
    for i, instance in enumerate(_hostile_dccs()):
        for v in compiled:
            assert schemas._fast_valid(v)(instance) == execd[v](instance), (i, v)


def test_validate_dcc_on_hostile_input_is_the_reference_answer() -> None:
    # in either mode (compiled or exec'd pre-check): the same messages as jsonschema's path
    # (not on the last three leaves: jsonschema compares a complex number with a minimum, a
    # TypeError, and its messages repr the 2,000-deep values, a RecursionError; a decoded
    # credential never gets there: CBOR -> JSON rejects complex, the decoder caps the depth)
    for i, instance in enumerate(_hostile_dccs(deep=False)[::5]):
        assert validate_dcc(instance) == schemas._problems(instance), i


# --- patterns mean what ECMA-262 (JSON Schema's regex dialect) says, not what Python's re says


@pytest.mark.parametrize(("changes", "field"), [
    ({"nam": {"fn": "Nguyễn", "fnt": "NGUYEN\n"}}, "nam.fnt"),  # Python's $ before a final \n
    ({"dob": "1990-01-02\n"}, "dob"),
    ({"dob": "19\u0669\u0660-\u0660\u0661-\u0660\u0662"}, "dob"),  # Arabic-Indic digits
    ({"dob": "\uff11\uff19\uff19\uff10"}, "dob"),  # full-width digits
])
def test_patterns_are_read_as_ecma_262(changes: dict[str, Any], field: str) -> None:
    body = dcc(**changes)
    errors = validate_dcc(body)
    assert errors and errors[0].startswith(f"{field}: "), errors
    assert not schemas._fast_check("1.3.0")(body)


@pytest.mark.parametrize("ver", ["\u0661.\u0663.\u0660", "1.3.0\n"])
def test_version_digits_are_ascii(ver: str) -> None:
    errors = validate_dcc(dcc(ver=ver))
    assert len(errors) == 1 and errors[0].startswith("ver: "), errors


def test_date_time_digits_are_ascii() -> None:
    entry = {"tg": "840539006", "tt": "LP6464-4", "sc": "\u0662021-06-01T10:00:00Z",
             "tr": "260415000", "tc": "Kien Giang CDC", "co": "VN", "is": "Bộ Y tế",
             "ci": "URN:UVCI:01:VN:KG/123/456#Z"}
    body = dcc(t=[entry])
    del body["v"]
    errors = validate_dcc(body)
    assert any(e.startswith("t[0].sc: ") for e in errors), errors


@pytest.mark.parametrize(("pattern", "good", "bad"), [
    ("^[A-Z<]*$", ["", "NGUYEN<THI"], ["NGUYEN\n", "a", "NGUYEN\r"]),
    (r"^\d+.\d+.\d+$", ["1.3.0", "1x3y0"], ["1.3.0\n", "1\r3.0", "1\u20283.0", "\u0661.3.0"]),
    ("[A-Z]{1,10}", ["xAx"], ["abc", "\u00c4"]),
    (r"^[\d$.]+$", ["1$.", "$"], ["\u0661"]),  # $ and . inside a class stay literal
    ("^a|b$", ["ab", "xb"], ["b\n", "xa"]),
])
def test_ecma_regex(pattern: str, good: list[str], bad: list[str]) -> None:
    from vaxqr.schemafast import ecma_regex

    rx = ecma_regex(pattern)
    assert [g for g in good if not rx.search(g)] == []
    assert [b for b in bad if rx.search(b)] == []


@pytest.mark.parametrize("pattern", [r"(a)\1", r"\Aa", "(?P<n>a)", "[]", "[^]", "[a", "\\"])
def test_ecma_regex_refuses_what_it_cannot_translate(pattern: str) -> None:
    from vaxqr.schemafast import Unsupported, ecma_regex

    with pytest.raises(Unsupported):
        ecma_regex(pattern)
