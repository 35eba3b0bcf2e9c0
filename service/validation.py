"""Request parsing and the rules for a user's fields (USER_FIELDS, the one table the OpenAPI
document and the SQL in service/users.py are built from too). No Flask, no database.

Every way a request body can be wrong ends here as a precise 4xx, before anything reaches the
database driver: too large (413, under any framing), unreadable (400), not UTF-8 (400), not
JSON or nested too deep (400), or well-formed but with a bad field (422 naming it)."""

from __future__ import annotations

import functools
import json
import re
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from gunicorn.http.errors import NoMoreData, ParseException
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from service.errors import BodyTimedOut, BodyTooLarge, BodyUnreadable, ValidationFailed

LIMIT_DEFAULT = 20
LIMIT_MAX = 100
ID_MAX = 2**64 - 1  # BIGINT UNSIGNED: the largest id, `after` and `limit` there is
# A user is a flat object (depth 1). The limit is generous, and explicit: json's C decoder
# recurses once per level, and a stack that is smaller than the main thread's (a thread's, a
# greenlet's) must never be what decides.
JSON_DEPTH_MAX = 32
_READ_STEP = 64 * 1024

# local@domain: no whitespace, one "@", a dotted domain whose labels are 1-63 characters
# (letters, digits, hyphens, or non-ASCII for internationalised names), no edge hyphens.
_LABEL = r"(?:[^\W_]|[^\W_][\w-]{0,61}[^\W_])"
_DIGITS = re.compile(r"[0-9]{1,20}")
_EMAIL = re.compile(rf"^[^@\s]{{1,64}}@(?:{_LABEL}\.)+{_LABEL}$")
# What nests in JSON text: a bracket, or a whole string (skipped, so brackets inside it don't).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # in the JSON text: worth a closer look
_SURROGATE = re.compile("[\ud800-\udfff]")
_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def read_body(stream: IO[bytes], content_length: int | None, limit: int) -> bytes:
    """The whole body, at most `limit` bytes, whatever its framing: a Content-Length over the
    limit is refused before reading, a chunked (or length-less) body as soon as it passes the
    limit. Pass the server's own stream (gunicorn's ends at the body's end under every
    framing): werkzeug's limited stream stops at the limit silently, so a chunked body over it
    would be truncated instead of refused. A body that cannot be read (bad chunked framing, the
    client gone, too slow) is a 400 or 408; the connection must then be closed."""
    if content_length is not None and content_length > limit:
        raise BodyTooLarge(limit)
    data = bytearray()
    try:
        while len(data) <= limit:
            piece = stream.read(min(_READ_STEP, limit + 1 - len(data)))
            if not piece:
                break
            data += piece
    except TimeoutError:
        raise BodyTimedOut() from None
    except NoMoreData:
        raise BodyUnreadable("the connection closed before the body ended.") from None
    except (ParseException, OSError, ValueError) as exc:
        raise BodyUnreadable(f"{exc}.") from None
    if len(data) > limit:
        raise BodyTooLarge(limit)
    if content_length is not None and len(data) < content_length:
        raise BodyUnreadable(
            f"the connection closed after {len(data)} of the {content_length} bytes"
            " its Content-Length announced."
        )
    return bytes(data)


def _check_depth(text: str) -> None:
    """400 if the JSON text nests deeper than JSON_DEPTH_MAX. Counting brackets (in C) bounds
    the depth from above, so an ordinary body is never scanned."""
    if text.count("[") + text.count("{") <= JSON_DEPTH_MAX:
        return
    depth = 0
    for match in _STRUCTURE.finditer(text):
        bracket = text[match.start()]  # a string match starts with '"'
        if bracket in "[{":
            depth += 1
            if depth > JSON_DEPTH_MAX:
                raise BadRequest(f"The body is nested deeper than {JSON_DEPTH_MAX} levels.")
        elif bracket in "]}":
            depth -= 1


def parse_json_object(content_type: str | None, body: bytes) -> Any:
    """Decode a JSON request body: 415 unless the content type is JSON; 400 unless the body is
    UTF-8 (RFC 8259 section 8.1: no UTF-16/32, and no surrogates encoded as UTF-8), JSON,
    nested at most JSON_DEPTH_MAX deep, and free of unpaired surrogate escapes ("\\ud800"):
    all of these are a body that is not valid (I-)JSON text, whatever field it is in, so 400
    rather than 422."""
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType("Send the body as application/json.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"The body is not valid UTF-8: {exc.reason} at byte {exc.start}."
        ) from None
    _check_depth(text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}") from None
    except RecursionError:  # not reached below JSON_DEPTH_MAX; kept so it can never be a 500
        raise BadRequest(f"The body is nested deeper than {JSON_DEPTH_MAX} levels.") from None
    except ValueError:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        raise BadRequest("The body is not valid JSON: a number has too many digits.") from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(data):
        raise BadRequest(
            "The body is not valid Unicode text: a string holds an unpaired surrogate escape "
            "(such as \\ud800), which I-JSON (RFC 7493) forbids and no UTF-8 text can store."
        )
    return data


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a decoded JSON value holds a lone surrogate in any string, key or value. A valid
    pair of escapes decodes to one character; only a lone one is left a surrogate."""
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


# Which characters a text field refuses, and why; str.isprintable() (in C) lets ordinary text
# through without looking at each character. Cc: control characters (NUL, ESC, DEL, NEL ...).
# Cs: a lone surrogate is not a character at all (JSON's "\ud800" escape decodes to one),
# and no UTF-8 encoder, the database driver's included, can store it. Zl/Zp: line and
# paragraph separators (U+2028, U+2029) break a name across lines like a newline. Cf:
# invisible format characters -- zero-width spaces (U+200B), bidirectional overrides
# (U+202E, the "Trojan Source" trick that shows text reordered), soft hyphens, BOMs -- make
# two names look alike or reorder what follows them on display. Except, in names: ZWNJ and
# ZWJ (U+200C, U+200D), which Persian and Indic spellings and emoji sequences need, and the
# tag characters of flag emoji (U+E0020-U+E007F). Spaces other than U+0020 (no-break space),
# private-use and unassigned code points (newer than this Python's Unicode tables) are
# allowed in names. An email address refuses every one of these, and all white space.
_REFUSED = {
    "Cc": "control characters",
    "Cs": "unpaired surrogates (not valid Unicode)",
    "Zl": "line or paragraph separators",
    "Zp": "line or paragraph separators",
    "Cf": "invisible formatting characters",
}
_EMAIL_ALSO = {
    "Zs": "white space",
    "Co": "private-use characters",
    "Cn": "unassigned code points",
}
_NAME_FORMAT_ALLOWED = {"\u200c", "\u200d"} | {chr(c) for c in range(0xE0020, 0xE0080)}
# The same two rules in words, for the OpenAPI document (beside its `not: {pattern: ...}`).
REFUSED_IN_WORDS = {
    False: (
        "No control characters, lone surrogates, line or paragraph separators, or invisible "
        "format characters (Unicode Cf) other than ZWNJ, ZWJ and emoji tag characters."
    ),
    True: "No white space, and no control, format, private-use or unassigned characters.",
}


def _refused(ch: str, *, strict: bool) -> bool:
    if unicodedata.category(ch) in _REFUSED and (strict or ch not in _NAME_FORMAT_ALLOWED):
        return True
    return strict and not ch.isprintable() and ch != " "


@functools.cache
def refused_characters(*, strict: bool) -> str:
    """A regular-expression character class of every code point a name (strict: an email)
    refuses, for the OpenAPI document's `not: {pattern: ...}`: the document says exactly what
    `_character_error` does. Built once from this Python's Unicode tables (about 0.3 s).
    Lone surrogates are left out: a body holding one is a 400 before validation, and a
    JSON Schema instance (a sequence of Unicode scalar values) cannot hold one."""
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue  # no JSON text that reaches validation holds one (a 400 before)
        if _refused(chr(code), strict=strict):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))

    parts = [chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges]
    return "[" + "".join(parts) + "]"


def _character_error(value: str, *, strict: bool) -> str | None:
    if value.isprintable():  # the common case, in C: nothing below can be in it
        return None
    for ch in value:
        if _refused(ch, strict=strict):
            reason = _REFUSED.get(unicodedata.category(ch)) or _EMAIL_ALSO.get(
                unicodedata.category(ch), "invisible characters"
            )
            return f"must not contain {reason} (found U+{ord(ch):04X})"
    return None


@dataclass(frozen=True)
class UserField:
    """One field of a user: a text column. Every rule validation applies to it is here, and
    service/openapi.py derives all the OpenAPI document says about it from these attributes.

    A value is checked in this order, the first failure being the field's one message: a
    string; at most `max_length` characters as sent; `pattern` found in it; at least
    `min_length` characters; no character its character rule refuses (`strict`); `shape`.
    What is stored is the value with surrounding white space trimmed."""

    name: str
    max_length: int
    description: str  # for the document, in words; the limits and characters are added to it
    example: str  # the document's request example
    required: bool = True  # in a create; an update gives any non-empty subset of the fields
    default: str | None = None  # what a create without this field stores (not required only)
    min_length: int = 0
    # Found somewhere in the value (re.search, as JSON Schema's `pattern`): the document
    # states it as is, so write it to mean the same to Python's re and to ECMA-262.
    pattern: str | None = None
    pattern_message: str = ""
    strict: bool = False  # an email's character rule (no white space ...), else a name's
    format: str | None = None  # a JSON Schema format: an annotation for the document only
    # A rule no JSON Schema pattern states exactly (Python's Unicode classes, such as
    # [^\W_], have no ECMA-262 equivalent): checked here, said in `description` only.
    shape: re.Pattern[str] | None = None
    shape_message: str = ""

    def __post_init__(self) -> None:
        if self.required == (self.default is not None):
            raise ValueError(f"{self.name}: a default is for a field that is not required")
        if (self.pattern is None) != (not self.pattern_message) or (self.shape is None) != (
            not self.shape_message
        ):
            raise ValueError(f"{self.name}: a pattern or shape needs its message, and back")

    def error(self, value: Any) -> str | None:
        """What is wrong with `value` for this field, or None."""
        if not isinstance(value, str):
            return "must be a string"
        if len(value) > self.max_length:  # as sent, as the document's maxLength says
            return f"must be at most {self.max_length} characters"
        if self.pattern is not None and not re.search(self.pattern, value):
            return self.pattern_message
        if len(value) < self.min_length:
            return f"must be at least {self.min_length} characters"
        if self.shape is None or self.shape.match(value):
            return _character_error(value, strict=self.strict)
        return _character_error(value, strict=self.strict) or self.shape_message


# The fields of a user, in the order of the database's columns and of every listing of them.
# Adding a field is one entry here (and its migration): validation, the SQL in service/users.py
# and the OpenAPI document all follow this table.
USER_FIELDS: tuple[UserField, ...] = (
    UserField(
        name="name",
        max_length=100,
        min_length=1,
        # Python's \s is str.isspace(), what strip() trims; ECMA-262's differs only in
        # characters every name refuses anyway (U+001C-U+001F, U+0085, U+FEFF).
        pattern=r"\S",
        pattern_message="must not be empty or only white space",
        description="Not only white space.",
        example="Ada Lovelace",
    ),
    UserField(
        name="email",
        max_length=254,
        strict=True,
        format="email",
        shape=_EMAIL,
        shape_message="must be an email address like name@example.com",
        description=(
            "local@domain: a local part of 1-64 characters without white space or '@', a "
            "dotted domain of letters, digits and inner hyphens (non-ASCII letters are "
            "accepted: internationalised addresses). Unique, compared case-insensitively."
        ),
        example="ada@example.com",
    ),
)
FIELDS = tuple(field.name for field in USER_FIELDS)


def validate_user(
    data: Any, *, partial: bool, fields: Sequence[UserField] = USER_FIELDS
) -> dict[str, str]:
    """Check a create (every required field) or update (some fields) payload; return the clean
    fields in the table's order, a create's with the defaults of those it left out. Raises
    ValidationFailed listing every bad, missing or unknown field."""
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": "", "message": "the body must be a JSON object"}])
    names = [field.name for field in fields]
    errors = [{"field": key, "message": "is not a known field"} for key in data if key not in names]
    for field in fields:
        if field.name in data:
            message = field.error(data[field.name])
            if message:
                errors.append({"field": field.name, "message": message})
        elif field.required and not partial:
            errors.append({"field": field.name, "message": "is required"})
    if partial and not errors and not data:
        errors.append({"field": "", "message": f"give at least one of {', '.join(names)}"})
    if errors:
        raise ValidationFailed(errors)
    clean = {}
    for field in fields:
        if field.name in data:
            clean[field.name] = data[field.name].strip()
        elif field.default is not None and not partial:
            clean[field.name] = field.default
    return clean


def _page_number(args: Any, field: str, default: int, low: int) -> tuple[int, str | None]:
    values = args.getlist(field) if hasattr(args, "getlist") else [args.get(field)]
    values = [v for v in values if v is not None]
    if len(values) > 1:
        return default, "must be given at most once"
    if not values:
        return default, None
    value = values[0]
    if not _DIGITS.fullmatch(value) or not low <= int(value) <= ID_MAX:
        return default, f"must be a whole number from {low} to {ID_MAX}"
    return int(value), None


def parse_page(args: Any) -> tuple[int, int]:
    """`limit` (default 20, capped at 100) and `after` (an id, default 0) from the query string:
    ASCII digits only, each given at most once, at most ID_MAX (as the OpenAPI document says)."""
    limit, limit_error = _page_number(args, "limit", LIMIT_DEFAULT, 1)
    after, after_error = _page_number(args, "after", 0, 0)
    errors = [
        {"field": field, "message": message}
        for field, message in (("limit", limit_error), ("after", after_error))
        if message
    ]
    if errors:
        raise ValidationFailed(errors, "The query string failed validation.")
    return min(limit, LIMIT_MAX), after
