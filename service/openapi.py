"""The OpenAPI 3.1 description of the HTTP interface, served at /openapi.json.

The user schemas are built from the field table validation uses (validation.USER_FIELDS), and
every problem+json answer is described once, in components.responses, and referred to.
tests/service/test_openapi.py holds it to the implementation: every route and method here
exists in the app and back, real responses validate against these schemas, and the field
schemas say what the table says."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from service.validation import (
    ID_MAX,
    JSON_DEPTH_MAX,
    LIMIT_DEFAULT,
    LIMIT_MAX,
    REFUSED_IN_WORDS,
    USER_FIELDS,
    UserField,
    refused_characters,
)

bp = Blueprint("openapi", __name__)

PROBLEM = "application/problem+json"


def _json(description: str, ref: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _problem(description: str, **headers: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        response["headers"] = headers
    return response


# Every problem+json answer an operation documents (service/errors.py, service/health.py, and
# service/worker.py for what gunicorn's parser refuses), each once; operations refer to them.
PROBLEM_RESPONSES = {
    "BadBody": _problem(
        "The body is not UTF-8, not JSON, nested deeper than "
        f"{JSON_DEPTH_MAX} levels, or could not be read (malformed chunked framing, a body "
        "shorter than its Content-Length); the connection is closed after a read failure."
    ),
    "BodyTimedOut": _problem("The body did not arrive in time; the connection is closed."),
    "BodyTooLarge": _problem(
        "The body is larger than MAX_BODY_BYTES, by its Content-Length or, chunked, by what "
        "arrived; the connection is closed."
    ),
    "UnsupportedMediaType": _problem("Body is not application/json (or another +json type)."),
    "InvalidBody": _problem("Validation failed; `errors` lists each bad field."),
    "InvalidQuery": _problem("Bad limit or after (not a whole number in range, or repeated)."),
    "RequestLineTooLong": _problem(
        "Request line longer than the server's limit (gunicorn's limit_request_line)."
    ),
    "UserNotFound": _problem("No such user."),
    "EmailTaken": _problem("Email already in use."),
    "DatabaseUnavailable": _problem(
        "Database unavailable.",
        **{
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "required": True,
                "schema": {"type": "integer", "minimum": 0},
            }
        },
    ),
    "NotReady": _problem("Not ready; `detail` says why."),
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


_ID = {
    "name": "user_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": ID_MAX},
}
_BODY_ERRORS = {
    "400": _ref("BadBody"),
    "408": _ref("BodyTimedOut"),
    "413": _ref("BodyTooLarge"),
    "415": _ref("UnsupportedMediaType"),
    "422": _ref("InvalidBody"),
}
# A created user's id feeds the operations on /users/{user_id} (used by stateful testing).
_USER_LINKS = {
    name: {"operationId": operation, "parameters": {"user_id": "$response.body#/id"}}
    for name, operation in (
        ("GetUser", "getUser"),
        ("UpdateUser", "updateUser"),
        ("DeleteUser", "deleteUser"),
    )
}
_UNAVAILABLE = {"503": _ref("DatabaseUnavailable")}


def field_schema(field: UserField) -> dict[str, Any]:
    """The JSON Schema of one user field: every limit of the table that JSON Schema can state,
    the rest (a `shape`, trimming) in words."""
    schema: dict[str, Any] = {"type": "string", "maxLength": field.max_length}
    if field.min_length:
        schema["minLength"] = field.min_length
    if field.pattern is not None:
        schema["pattern"] = field.pattern
    if field.format is not None:
        schema["format"] = field.format
    # exactly the characters the field's rule refuses (see refused_characters)
    schema["not"] = {"pattern": refused_characters(strict=field.strict)}
    length = f"At most {field.max_length} characters as sent"
    if field.min_length:
        length = f"{field.min_length} to {field.max_length} characters as sent"
    words = [f"{length}.", field.description]
    if not field.strict:  # a strict field refuses all white space: nothing to trim
        words.append("Surrounding white space is trimmed before storing.")
    schema["description"] = " ".join([*words, REFUSED_IN_WORDS[field.strict]])
    return schema


def user_schemas(fields: Sequence[UserField]) -> dict[str, dict[str, Any]]:
    """NewUser (a create), UserPatch (an update) and User (what is answered), from the table."""
    properties = {field.name: field_schema(field) for field in fields}
    new = {
        field.name: properties[field.name] | ({} if field.required else {"default": field.default})
        for field in fields
    }
    return {
        "NewUser": {
            "type": "object",
            "properties": new,
            "required": [field.name for field in fields if field.required],
            "additionalProperties": False,
        },
        "UserPatch": {
            "type": "object",
            "properties": properties,
            "minProperties": 1,
            "additionalProperties": False,
        },
        "User": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                **properties,
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
            },
            "required": ["id", *properties, "created_at", "updated_at"],
            "additionalProperties": False,
        },
    }


def _page_parameter(name: str, minimum: int, default: int, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "schema": {"type": "integer", "minimum": minimum, "maximum": ID_MAX, "default": default},
        "description": description + " ASCII digits; give it at most once.",
    }


def document(version: str, fields: Sequence[UserField] = USER_FIELDS) -> dict[str, Any]:
    """The whole document, a fresh copy each time (the parts shared between operations are
    module constants); `fields` is the user field table it describes."""
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "users-service", "version": version},
        "paths": {
            "/users": {
                "get": {
                    "operationId": "listUsers",
                    "parameters": [
                        _page_parameter(
                            "limit",
                            1,
                            LIMIT_DEFAULT,
                            f"Page size; values above {LIMIT_MAX} are capped.",
                        ),
                        _page_parameter("after", 0, 0, "Return users with an id above this one."),
                    ],
                    "responses": {
                        "200": _json("A page of users, by id.", "UserPage"),
                        "414": _ref("RequestLineTooLong"),
                        "422": _ref("InvalidQuery"),
                        **_UNAVAILABLE,
                    },
                },
                "post": {
                    "operationId": "createUser",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/NewUser"},
                                "example": {field.name: field.example for field in fields},
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            **_json("Created.", "User"),
                            "headers": {"Location": {"schema": {"type": "string"}}},
                            "links": _USER_LINKS,
                        },
                        **_BODY_ERRORS,
                        "409": _ref("EmailTaken"),
                        **_UNAVAILABLE,
                    },
                },
            },
            "/users/{user_id}": {
                "parameters": [_ID],
                "get": {
                    "operationId": "getUser",
                    "responses": {
                        "200": _json("The user.", "User"),
                        "404": _ref("UserNotFound"),
                        **_UNAVAILABLE,
                    },
                },
                "patch": {
                    "operationId": "updateUser",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/UserPatch"}
                            }
                        },
                    },
                    "responses": {
                        "200": _json("The updated user.", "User"),
                        "404": _ref("UserNotFound"),
                        "409": _ref("EmailTaken"),
                        **_BODY_ERRORS,
                        **_UNAVAILABLE,
                    },
                },
                "delete": {
                    "operationId": "deleteUser",
                    "responses": {
                        "204": {"description": "Deleted."},
                        "404": _ref("UserNotFound"),
                        **_UNAVAILABLE,
                    },
                },
            },
            "/healthz": {
                "get": {
                    "operationId": "liveness",
                    "responses": {"200": _json("The process can serve.", "Status")},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readiness",
                    "responses": {
                        "200": _json("Database reachable, schema current.", "Status"),
                        "503": _ref("NotReady"),
                    },
                }
            },
            "/version": {
                "get": {
                    "operationId": "version",
                    "responses": {"200": _json("Build info.", "Version")},
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "responses": {
                        "200": {
                            "description": "This document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "responses": PROBLEM_RESPONSES,
            "schemas": {
                **user_schemas(fields),
                "UserPage": {
                    "type": "object",
                    "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/User"}},
                        "next": {"type": ["string", "null"]},
                    },
                    "required": ["items", "next"],
                    "additionalProperties": False,
                },
                "Status": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "string"},
                        "schema_version": {"type": "integer"},
                    },
                    "required": ["status"],
                },
                "Version": {
                    "type": "object",
                    "properties": {
                        "version": {"type": "string"},
                        "git_sha": {"type": "string"},
                        "build_date": {"type": "string"},
                    },
                    "required": ["version", "git_sha", "build_date"],
                    "additionalProperties": False,
                },
                "Problem": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "field": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                                "required": ["field", "message"],
                            },
                        },
                    },
                    "required": ["type", "title", "status", "detail"],
                },
            },
        },
    }
    return copy.deepcopy(spec)


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(document(current_app.config["SETTINGS"].app_version))
