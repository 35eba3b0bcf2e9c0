"""The OpenAPI 3.1 description of the HTTP interface, served at /openapi.json.

tests/service/test_openapi.py holds it to the implementation: every route and method here
exists in the app and back, and real responses validate against these schemas."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from service.validation import (
    EMAIL_MAX,
    ID_MAX,
    JSON_DEPTH_MAX,
    LIMIT_DEFAULT,
    LIMIT_MAX,
    NAME_MAX,
    refused_characters,
)

bp = Blueprint("openapi", __name__)

PROBLEM = "application/problem+json"


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _json(description: str, ref: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


_ID = {
    "name": "user_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": ID_MAX},
}
_BODY_ERRORS = {
    "400": _problem_response(
        "The body is not UTF-8, not JSON, nested deeper than "
        f"{JSON_DEPTH_MAX} levels, or could not be read (malformed chunked framing, a body "
        "shorter than its Content-Length); the connection is closed after a read failure."
    ),
    "408": _problem_response("The body did not arrive in time; the connection is closed."),
    "413": _problem_response(
        "The body is larger than MAX_BODY_BYTES, by its Content-Length or, chunked, by what "
        "arrived; the connection is closed."
    ),
    "415": _problem_response("Body is not application/json (or another +json type)."),
    "422": _problem_response("Validation failed; `errors` lists each bad field."),
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
_UNAVAILABLE = {"503": _problem_response("Database unavailable.")}


def _page_parameter(name: str, minimum: int, default: int, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "schema": {"type": "integer", "minimum": minimum, "maximum": ID_MAX, "default": default},
        "description": description + " ASCII digits; give it at most once.",
    }


def document(version: str) -> dict[str, Any]:
    user_fields = {
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": NAME_MAX,
            "pattern": "\\S",
            "not": {"pattern": refused_characters(strict=False)},
            "description": (
                f"At most {NAME_MAX} characters as sent, not only white space (which is "
                "trimmed before storing). No control characters, lone surrogates, line or "
                "paragraph separators, or invisible format characters (Unicode Cf) other than "
                "ZWNJ, ZWJ and emoji tag characters."
            ),
        },
        "email": {
            "type": "string",
            "format": "email",
            "maxLength": EMAIL_MAX,
            "not": {"pattern": refused_characters(strict=True)},
            "description": (
                "local@domain: a local part of 1-64 characters without white space or '@', a "
                "dotted domain of letters, digits and inner hyphens (non-ASCII letters are "
                "accepted: internationalised addresses). No control, format, private-use or "
                "unassigned characters. Unique, compared case-insensitively."
            ),
        },
    }
    return {
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
                        "414": _problem_response(
                            "Request line longer than the server's limit (gunicorn's "
                            "limit_request_line)."
                        ),
                        "422": _problem_response(
                            "Bad limit or after (not a whole number in range, or repeated)."
                        ),
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
                                "example": {"name": "Ada Lovelace", "email": "ada@example.com"},
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
                        "409": _problem_response("Email already in use."),
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
                        "404": _problem_response("No such user."),
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
                        "404": _problem_response("No such user."),
                        "409": _problem_response("Email already in use."),
                        **_BODY_ERRORS,
                        **_UNAVAILABLE,
                    },
                },
                "delete": {
                    "operationId": "deleteUser",
                    "responses": {
                        "204": {"description": "Deleted."},
                        "404": _problem_response("No such user."),
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
                        "503": _problem_response("Not ready; `detail` says why."),
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
            "schemas": {
                "NewUser": {
                    "type": "object",
                    "properties": user_fields,
                    "required": ["name", "email"],
                    "additionalProperties": False,
                },
                "UserPatch": {
                    "type": "object",
                    "properties": user_fields,
                    "minProperties": 1,
                    "additionalProperties": False,
                },
                "User": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        **user_fields,
                        "created_at": {"type": "string", "format": "date-time"},
                        "updated_at": {"type": "string", "format": "date-time"},
                    },
                    "required": ["id", "name", "email", "created_at", "updated_at"],
                    "additionalProperties": False,
                },
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
            }
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(document(current_app.config["SETTINGS"].app_version))
