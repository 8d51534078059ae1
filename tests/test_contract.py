"""The documented contract matches what the service sends: every status each route can answer is
in ``/openapi.json`` with the real error body, and the README's error-code table lists exactly
the codes in the code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from tierwise.service import errors as domain
from tierwise.service.api.errors import STATUS

# The statuses each route can send besides 200 (a route may document more, e.g. auth's 401/403).
MUST_DOCUMENT: dict[tuple[str, str], set[int]] = {
    ("post", "/v1/route"): {400, 408, 413, 422, 500},
    ("post", "/v1/outcomes"): {400, 404, 408, 409, 413, 422, 500},
    ("post", "/v1/context"): {400, 404, 408, 413, 422, 500, 503},
    ("get", "/v1/queue"): {408, 413, 500},
    ("post", "/v1/queue/{item_id}/resolve"): {400, 404, 408, 409, 413, 422, 500},
    ("get", "/v1/policy"): {408, 413, 500},
    ("get", "/healthz"): {408, 413, 500},
    ("get", "/metrics"): {408, 413, 500},
    ("post", "/v1/chat/completions"): {400, 408, 413, 422, 500, 502, 503, 504},
    ("get", "/v1/models"): {408, 413, 500},
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    """The document needs no lifespan: the app is built, not started."""
    from tierwise.service.api.app import create_app
    from tierwise.service.settings import Settings

    out: dict[str, Any] = create_app(Settings(use_registry=False, embedder="hashing")).openapi()
    return out


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            yield method, path, op


def test_every_route_documents_every_status_it_can_send(doc: dict[str, Any]) -> None:
    seen = {(m, p): {int(s) for s in op["responses"] if s != "200"} for m, p, op in _operations(doc)}
    for key, statuses in MUST_DOCUMENT.items():
        assert key in seen, key
        assert statuses <= seen[key], (key, statuses - seen[key])


def test_every_error_status_is_documented_with_the_body_sent(doc: dict[str, Any]) -> None:
    for method, path, op in _operations(doc):
        for status, response in op["responses"].items():
            if status == "200":
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, status)
    # FastAPI's default 422 body ({"detail": [...]}) is never sent, so it is not documented.
    assert not {"HTTPValidationError", "ValidationError"} & set(doc["components"]["schemas"])
    error = doc["components"]["schemas"]["ErrorDetail"]
    assert set(error["required"]) == {"code", "message", "field"}


def test_path_parameters_document_their_range(doc: dict[str, Any]) -> None:
    [param] = doc["paths"]["/v1/queue/{item_id}/resolve"]["post"]["parameters"]
    assert (param["schema"]["minimum"], param["schema"]["maximum"]) == (1, 2**63 - 1)


def test_request_lists_and_strings_all_have_a_maximum(doc: dict[str, Any]) -> None:
    """Every list and string of every request body is bounded in the published schema too."""
    schemas = doc["components"]["schemas"]

    def unbounded(schema: dict[str, Any], where: str) -> Iterator[str]:
        for option in schema.get("anyOf", [schema]):
            if option.get("type") == "array":
                if "maxItems" not in option:
                    yield where
                yield from unbounded(option["items"], where + "[]")
            elif option.get("type") == "string" and "maxLength" not in option and "enum" not in option \
                    and "const" not in option:
                yield where
            elif "$ref" in option:
                name = option["$ref"].rsplit("/", 1)[1]
                for field, sub in schemas[name].get("properties", {}).items():
                    yield from unbounded(sub, f"{name}.{field}")

    bodies = [op["requestBody"]["content"]["application/json"]["schema"]
              for _, _, op in _operations(doc) if "requestBody" in op]
    assert len(bodies) == 5  # route, outcomes, queue resolve, chat completions, context
    assert [w for body in bodies for w in unbounded(body, "body")] == []


def _subclasses(cls: type[domain.TierwiseError]) -> Iterator[type[domain.TierwiseError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _codes_in_the_code() -> set[str]:
    """Every domain error's code, and every literal code the HTTP edge builds a body with."""
    # Only the service's own errors: bench errors (``DataUnavailable``) never reach the HTTP edge,
    # and whether their module is loaded depends on which tests ran first.
    codes = {cls.code for cls in _subclasses(domain.TierwiseError) if cls.__module__.startswith("tierwise.service")}
    for source in (REPO / "service").rglob("*.py"):
        codes |= set(re.findall(r'error_body\(\s*"([a-z_]+)"', source.read_text()))
    return codes


def _readme_table() -> dict[str, str]:
    """``code`` → status column of the README's error-code table."""
    text = (Path(REPO) / "README.md").read_text()
    table = text[text.index("| code | status | when |"):]
    table = table[: table.index("\n\n")]
    rows: dict[str, str] = {}
    for line in table.splitlines()[2:]:
        codes, status = line.split("|")[1:3]
        for code in re.findall(r"`([a-z_]+)`", codes):
            rows[code] = status.strip()
    return rows


def test_readme_error_table_lists_exactly_the_codes_sent() -> None:
    assert set(_readme_table()) == _codes_in_the_code()


def test_readme_error_table_gives_each_domain_error_its_status() -> None:
    rows = _readme_table()
    for cls, status in STATUS.items():
        assert str(status) in rows[cls.code], (cls.code, status, rows[cls.code])


def test_integral_numbers_are_integers_as_json_schema_says_but_fractions_and_bools_are_not() -> None:
    """``/openapi.json`` types counts as ``integer``, which JSON Schema satisfies with ``3.0``."""
    from pydantic import ValidationError

    from tierwise.service.api.schemas import RouteIn

    assert RouteIn.model_validate({"prompt": "x", "diff_lines": 3.0}).diff_lines == 3
    for bad in (3.5, True, "3"):
        with pytest.raises(ValidationError) as info:
            RouteIn.model_validate({"prompt": "x", "diff_lines": bad})
        assert info.value.errors()[0]["loc"] == ("diff_lines",)
