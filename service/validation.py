"""Request parsing and the rules for a user's fields. Pure functions: no Flask, no database."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from service.errors import ValidationFailed

NAME_MAX = 100
EMAIL_MAX = 254
LIMIT_DEFAULT = 20
LIMIT_MAX = 100
FIELDS = ("name", "email")

# local@domain: no whitespace, one "@", a dotted domain whose labels are 1-63 characters
# (letters, digits, hyphens, or non-ASCII for internationalised names), no edge hyphens.
_LABEL = r"(?:[^\W_]|[^\W_][\w-]{0,61}[^\W_])"
_DIGITS = re.compile(r"[0-9]{1,18}")
_EMAIL = re.compile(rf"^[^@\s]{{1,64}}@(?:{_LABEL}\.)+{_LABEL}$")


def parse_json_object(content_type: str | None, body: bytes) -> Any:
    """Decode a JSON request body: 415 unless the content type is JSON, 400 if malformed."""
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType("Send the body as application/json.")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}") from None


def _name_error(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if not value.strip():
        return "must not be empty"
    if len(value.strip()) > NAME_MAX:  # surrounding white space is trimmed before storing
        return f"must be at most {NAME_MAX} characters"
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        return "must not contain control characters"
    return None


def _email_error(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > EMAIL_MAX:
        return f"must be at most {EMAIL_MAX} characters"
    if not _EMAIL.match(value):
        return "must be an email address like name@example.com"
    return None


_RULES = {"name": _name_error, "email": _email_error}


def validate_user(data: Any, *, partial: bool) -> dict[str, str]:
    """Check a create (all fields) or update (some fields) payload; return the clean fields.
    Raises ValidationFailed listing every bad, missing or unknown field."""
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": "", "message": "the body must be a JSON object"}])
    errors = [
        {"field": key, "message": "is not a known field"} for key in data if key not in _RULES
    ]
    for field, rule in _RULES.items():
        if field in data:
            message = rule(data[field])
            if message:
                errors.append({"field": field, "message": message})
        elif not partial:
            errors.append({"field": field, "message": "is required"})
    if partial and not errors and not data:
        errors.append({"field": "", "message": f"give at least one of {', '.join(FIELDS)}"})
    if errors:
        raise ValidationFailed(errors)
    return {field: data[field].strip() for field in FIELDS if field in data}


def parse_page(args: dict[str, str]) -> tuple[int, int]:
    """`limit` (default 20, capped at 100) and `after` (an id, default 0) from the query string."""
    errors = []
    limit = args.get("limit", str(LIMIT_DEFAULT))
    after = args.get("after", "0")
    if not _DIGITS.fullmatch(limit) or int(limit) < 1:
        errors.append({"field": "limit", "message": "must be a whole number from 1"})
    if not _DIGITS.fullmatch(after):
        errors.append({"field": "after", "message": "must be a user id (a whole number)"})
    if errors:
        raise ValidationFailed(errors)
    return min(int(limit), LIMIT_MAX), int(after)
