"""service/openapi.py: the published OpenAPI document and the implementation agree."""

from __future__ import annotations

import dataclasses
import random
import re

import jsonschema
import pytest
import schemathesis

from service.errors import ValidationFailed
from service.openapi import PROBLEM, document
from service.validation import USER_FIELDS, UserField, refused_characters, validate_user

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
    entry = documented[status]
    if "$ref" in entry:  # a shared one, from components.responses
        entry = spec["components"]["responses"][entry["$ref"].rpartition("/")[2]]
    content = entry.get("content")
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


def operations(spec: dict) -> dict[str, dict]:
    return {
        f"{method.upper()} {path}": op
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    }


def expected_field_schema(field: UserField) -> dict:
    """What the document must say about a field, read off the table entry (bar the prose)."""
    expected = {
        "type": "string",
        "maxLength": field.max_length,
        "not": {"pattern": refused_characters(strict=field.strict)},
    }
    if field.min_length:
        expected["minLength"] = field.min_length
    if field.pattern is not None:
        expected["pattern"] = field.pattern
    if field.format is not None:
        expected["format"] = field.format
    return expected


def without_description(schema: dict) -> dict:
    return {key: value for key, value in schema.items() if key != "description"}


def test_the_user_schemas_say_what_the_field_table_says():
    schemas = document("test")["components"]["schemas"]
    names = [field.name for field in USER_FIELDS]
    new, patch, user = schemas["NewUser"], schemas["UserPatch"], schemas["User"]
    assert list(new["properties"]) == list(patch["properties"]) == names
    assert list(user["properties"]) == ["id", *names, "created_at", "updated_at"]
    assert new["required"] == [field.name for field in USER_FIELDS if field.required]
    assert "required" not in patch and patch["minProperties"] == 1
    assert user["required"] == list(user["properties"])  # an answer always has every field
    for schema in (new, patch, user):
        assert schema["additionalProperties"] is False
    for field in USER_FIELDS:
        documented = [s["properties"][field.name] for s in (new, patch, user)]
        default = {} if field.required else {"default": field.default}
        assert without_description(documented[0]) == expected_field_schema(field) | default
        for schema in documented[1:]:
            assert without_description(schema) == expected_field_schema(field)
        assert f"{field.max_length} characters as sent" in documented[0]["description"]
        assert field.description in documented[0]["description"]
    request = document("test")["paths"]["/users"]["post"]["requestBody"]["content"]
    assert request["application/json"]["example"] == {f.name: f.example for f in USER_FIELDS}


def test_the_field_limits_are_the_ones_the_database_and_clients_rely_on():
    # Literal: the table and the document drifting together (VARCHAR(100), VARCHAR(254)) fail.
    new = document("test")["components"]["schemas"]["NewUser"]
    assert new["required"] == ["name", "email"]
    name, email = new["properties"]["name"], new["properties"]["email"]
    assert (name["minLength"], name["maxLength"], name["pattern"]) == (1, 100, "\\S")
    assert (email["maxLength"], email["format"]) == (254, "email")
    assert "minLength" not in email and "pattern" not in email


def random_text(rng: random.Random) -> str:
    pieces = ["", " ", "a", "Ada", "@", ".", "-", "_", "b.co", "ü", "x" * 60, "\u00a0"]
    pieces += ["\u200b", "\u200d", "\x00", "\x1c", "\x85", "\ufeff", "\u2028", "\ue000", "\t"]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))


@pytest.mark.parametrize("field", USER_FIELDS, ids=lambda field: field.name)
def test_a_documented_field_refuses_only_what_validation_refuses(field):
    """The document never refuses a value validation accepts; where the field has no `shape`
    (a rule said only in words) it refuses exactly what validation refuses."""
    schema = document("test")["components"]["schemas"]["NewUser"]["properties"][field.name]
    checker = jsonschema.Draft202012Validator(schema)
    rng = random.Random(9)
    values = [random_text(rng) for _ in range(3000)] + [5, None]
    values += ["x" * field.max_length, "x" * (field.max_length + 1)]
    others = {f.name: f.example for f in USER_FIELDS}
    for value in values:
        try:
            validate_user({**others, field.name: value}, partial=False)
            valid = True
        except ValidationFailed:
            valid = False
        documented = checker.is_valid(value)
        if field.shape is None:
            assert documented is valid, repr(value)
        else:
            assert documented or not valid, repr(value)


def test_every_problem_answer_is_a_shared_response_and_every_shared_one_is_used():
    spec = document("test")
    shared = spec["components"]["responses"]
    used = set()
    for name, operation in operations(spec).items():
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            assert set(response) == {"$ref"}, f"{name} {status} is written out, not shared"
            prefix, _, key = response["$ref"].rpartition("/")
            assert prefix == "#/components/responses" and key in shared, (name, status)
            used.add(key)
    assert used == set(shared), f"unused: {set(shared) - used}"
    for key, response in shared.items():
        assert response["description"], key
        assert response["content"] == {
            PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}
        }, key
    assert operations(spec)["POST /users"]["responses"]["422"] == {
        "$ref": "#/components/responses/InvalidBody"
    }


def refs(node) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in refs(item)]
    return []


def test_the_document_is_a_valid_openapi_31_document():
    spec = document("test")
    # schemathesis checks a document against the OpenAPI 3.1 schema before using it
    schemathesis.openapi.from_dict(spec).validate()
    for schema in spec["components"]["schemas"].values():  # what that schema leaves out
        jsonschema.Draft202012Validator.check_schema(schema)
    for ref in refs(spec):  # that schema cannot see a $ref to nowhere
        node = spec
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
    broken = document("test")
    del broken["components"]["responses"]["UserNotFound"]["description"]
    with pytest.raises(Exception, match="description"):
        schemathesis.openapi.from_dict(broken).validate()


def test_a_field_added_to_the_table_is_one_edit_the_document_follows():
    nickname = UserField(
        name="nickname",
        max_length=30,
        required=False,
        default="",
        description="What the user likes to be called.",
        example="Ada",
    )
    table = (*USER_FIELDS, nickname)
    spec = document("test", table)
    schemas = spec["components"]["schemas"]
    assert schemas["NewUser"]["properties"]["nickname"] == {
        "type": "string",
        "maxLength": 30,
        "not": {"pattern": refused_characters(strict=False)},
        "default": "",
        "description": (
            "At most 30 characters as sent. What the user likes to be called. Surrounding "
            "white space is trimmed before storing. No control characters, lone surrogates, "
            "line or paragraph separators, or invisible format characters (Unicode Cf) other "
            "than ZWNJ, ZWJ and emoji tag characters."
        ),
    }
    assert schemas["NewUser"]["required"] == ["name", "email"]  # optional on create
    assert "nickname" in schemas["UserPatch"]["properties"]
    written = ["id", "name", "email", "nickname", "created_at", "updated_at"]
    assert schemas["User"]["required"] == list(schemas["User"]["properties"]) == written
    example = spec["paths"]["/users"]["post"]["requestBody"]["content"]["application/json"]
    assert example["example"]["nickname"] == "Ada"
    schemathesis.openapi.from_dict(spec).validate()
    # and one edit of an existing entry moves its limit in the document
    longer = tuple(dataclasses.replace(f, max_length=120) if f.name == "name" else f for f in table)
    assert (
        document("test", longer)["components"]["schemas"]["User"]["properties"]["name"]["maxLength"]
        == 120
    )
    assert document("test") == document("test", USER_FIELDS)  # the table is the default
