"""service/openapi.py: the published OpenAPI document and the implementation agree."""

from __future__ import annotations

import re

import jsonschema
import pytest

from service.openapi import document

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def spec_routes(spec: dict) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def app_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        routes |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_every_route_is_documented_and_every_documented_route_exists(app):
    assert app_routes(app) == spec_routes(document("test"))


def test_served_document_is_the_module_document(client, app):
    served = client.get("/openapi.json").get_json()
    assert served == document(app.config["SETTINGS"].app_version)
    assert served["openapi"].startswith("3.")


def validate(spec: dict, path: str, method: str, response) -> None:
    operation = spec["paths"][path][method]
    documented = operation["responses"]
    status = str(response.status_code)
    assert status in documented, f"{method.upper()} {path} answered undocumented {status}"
    content = documented[status].get("content")
    if content is None:
        assert response.data == b""
        return
    assert response.mimetype in content
    schema = {**content[response.mimetype]["schema"], "components": spec["components"]}
    jsonschema.validate(response.get_json(), schema)


@pytest.mark.parametrize(
    ("method", "path", "url", "body"),
    [
        ("post", "/users", "/users", {"name": "Doc", "email": "doc@example.com"}),
        ("post", "/users", "/users", {"name": ""}),
        ("post", "/users", "/users", {"name": "Doc", "email": "doc@example.com", "x": 1}),
        ("get", "/users", "/users?limit=1", None),
        ("get", "/users", "/users?limit=zero", None),
        ("get", "/users/{user_id}", "/users/{id}", None),
        ("get", "/users/{user_id}", "/users/0", None),
        ("patch", "/users/{user_id}", "/users/{id}", {"name": "Doc 2"}),
        ("patch", "/users/{user_id}", "/users/{id}", {}),
        ("delete", "/users/{user_id}", "/users/{id}", None),
        ("delete", "/users/{user_id}", "/users/0", None),
        ("get", "/healthz", "/healthz", None),
        ("get", "/readyz", "/readyz", None),
        ("get", "/version", "/version", None),
    ],
)
def test_real_responses_match_the_documented_schemas(client, method, path, url, body):
    spec = document("test")
    user = client.post("/users", json={"name": "Seed", "email": "seed@example.com"}).get_json()
    response = client.open(url.format(id=user["id"]), method=method.upper(), json=body)
    validate(spec, path, method, response)


def test_duplicate_and_oversized_bodies_match_documented_problems(client):
    spec = document("test")
    client.post("/users", json={"name": "A", "email": "a@example.com"})
    validate(
        spec, "/users", "post", client.post("/users", json={"name": "B", "email": "a@example.com"})
    )
    validate(
        spec,
        "/users",
        "post",
        client.post("/users", json={"name": "x" * 70_000, "email": "z@example.com"}),
    )
    validate(
        spec, "/users", "post", client.post("/users", data="{", content_type="application/json")
    )
    validate(spec, "/users", "post", client.post("/users", data="x", content_type="text/plain"))


def test_links_name_real_operations_and_a_field_the_response_has():
    spec = document("test")
    operations = {
        op["operationId"]: op
        for item in spec["paths"].values()
        for method, op in item.items()
        if method in HTTP_METHODS
    }
    links = spec["paths"]["/users"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} == {
        "getUser",
        "updateUser",
        "deleteUser",
    }
    user = spec["components"]["schemas"]["User"]["properties"]
    for link in links.values():
        assert link["operationId"] in operations
        assert link["parameters"] == {"user_id": "$response.body#/id"}
        assert "id" in user


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("name", "Ada", True),
        ("name", "   ", False),  # only white space
        ("name", "a\u200db", True),  # ZWJ, as in emoji sequences
        ("name", "a\u200bb", False),  # zero-width space
        ("name", "a\x00b", False),
        ("email", "a@b.co", True),
        ("email", "a\u200db@b.co", False),
        ("email", "a\x7fb@b.co", False),
    ],
)
def test_the_documented_field_schemas_refuse_what_validation_refuses(client, field, value, valid):
    schema = document("test")["components"]["schemas"]["NewUser"]["properties"][field]
    try:
        jsonschema.validate(value, schema)
        documented = True
    except jsonschema.ValidationError:
        documented = False
    assert documented is valid
    body = {"name": "Ada", "email": "ada@example.com", field: value}
    assert (client.post("/users", json=body).status_code == 201) is valid
