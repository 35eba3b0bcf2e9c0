"""service/validation.py: field rules and request parsing, without Flask or a database."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import sys
import threading

import pytest
from gunicorn.http.errors import ChunkMissingTerminator, InvalidChunkSize, NoMoreData
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from service.errors import (
    BodyTimedOut,
    BodyTooLarge,
    BodyUnreadable,
    ValidationFailed,
)
from service.validation import (
    FIELDS,
    ID_MAX,
    JSON_DEPTH_MAX,
    USER_FIELDS,
    UserField,
    _character_error,
    parse_json_object,
    parse_page,
    read_body,
    refused_characters,
    validate_user,
)

JSON = "application/json"


def field_errors(data: dict) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as info:
        validate_user(data, partial=False)
    return {e["field"]: e["message"] for e in info.value.errors}


@pytest.mark.parametrize(
    "email",
    ["a@b.co", "first.last+tag@sub.example.org", "x@xn--bcher-kva.example", "ü@bücher.de"],
)
def test_plausible_emails_are_accepted(email):
    assert validate_user({"name": "n", "email": email}, partial=False)["email"] == email


@pytest.mark.parametrize(
    "email",
    [
        "plain",
        "a@b",
        "a@@b.co",
        "a b@c.co",
        "a@-b.co",
        "a@b-.co",
        "@b.co",
        "a@.co",
        "x" * 65 + "@b.co",
        "a@" + "b" * 250 + ".co",
        42,
        None,
    ],
)
def test_implausible_emails_are_rejected(email):
    with pytest.raises(ValidationFailed) as info:
        validate_user({"name": "n", "email": email}, partial=False)
    assert info.value.errors[0]["field"] == "email"


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "tab\there", 7])
def test_bad_names_are_rejected(name):
    with pytest.raises(ValidationFailed):
        validate_user({"name": name, "email": "a@b.co"}, partial=False)


def test_name_of_exactly_100_characters_is_accepted_and_surrounding_space_trimmed():
    assert validate_user({"name": "x" * 100, "email": "a@b.co"}, partial=False)["name"] == (
        "x" * 100
    )
    assert validate_user({"name": "  Ada  ", "email": "a@b.co"}, partial=False)["name"] == "Ada"


def test_name_limit_counts_the_value_as_sent_as_the_document_says():
    # maxLength in the OpenAPI document applies to the value sent, white space included
    assert "name" in field_errors({"name": "x" * 100 + " ", "email": "a@b.co"})


def test_partial_update_accepts_one_field_and_rejects_none():
    assert validate_user({"email": "a@b.co"}, partial=True) == {"email": "a@b.co"}
    with pytest.raises(ValidationFailed):
        validate_user({}, partial=True)


def test_the_field_table_is_what_validation_checks():
    assert FIELDS == tuple(field.name for field in USER_FIELDS) == ("name", "email")
    errors = field_errors({"x": 1})
    assert errors == {"x": "is not a known field", "name": "is required", "email": "is required"}
    with pytest.raises(ValidationFailed) as info:
        validate_user({}, partial=True)
    assert info.value.errors == [{"field": "", "message": "give at least one of name, email"}]
    # one edit of the table moves the rule
    table = tuple(
        dataclasses.replace(f, max_length=3) if f.name == "name" else f for f in USER_FIELDS
    )
    with pytest.raises(ValidationFailed) as info:
        validate_user({"name": "Ada!", "email": "a@b.co"}, partial=False, fields=table)
    assert info.value.errors == [{"field": "name", "message": "must be at most 3 characters"}]


def test_a_field_added_to_the_table_is_validated_and_defaulted():
    nickname = UserField(
        name="nickname",
        max_length=5,
        min_length=2,
        required=False,
        default="-",
        description="What the user likes to be called.",
        example="Ada",
    )
    table = (*USER_FIELDS, nickname)
    ada = {"name": "Ada", "email": "a@b.co"}
    assert validate_user(ada, partial=False, fields=table) == {**ada, "nickname": "-"}
    assert validate_user({"nickname": " Al "}, partial=True, fields=table) == {"nickname": "Al"}
    assert validate_user({"name": "B"}, partial=True, fields=table) == {"name": "B"}  # no default
    for value, message in [
        ("Adelaide", "must be at most 5 characters"),
        ("A", "must be at least 2 characters"),
        ("A\u200bl", "must not contain invisible formatting characters (found U+200B)"),
        (3, "must be a string"),
    ]:
        with pytest.raises(ValidationFailed) as info:
            validate_user({**ada, "nickname": value}, partial=False, fields=table)
        assert info.value.errors == [{"field": "nickname", "message": message}]
    with pytest.raises(ValidationFailed) as info:
        validate_user({"nickname": "Al"}, partial=False, fields=table)
    assert {e["field"] for e in info.value.errors} == {"name", "email"}
    assert "nickname" in field_errors({**ada, "nickname": "Al"})  # not in the real table


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"required": False}, "a default is for"),  # optional: what would a create store?
        ({"default": "x"}, "a default is for"),  # a required field's default is never used
        ({"pattern": "x"}, "needs its message"),  # a refusal nobody could understand
        ({"shape": re.compile("x")}, "needs its message"),
        ({"shape_message": "must be something"}, "needs its message"),
    ],
)
def test_an_inconsistent_table_entry_is_refused(changes, says):
    fine = UserField(name="nickname", max_length=5, description="A nickname.", example="Al")
    with pytest.raises(ValueError, match=says):
        dataclasses.replace(fine, **changes)


def test_non_object_body_is_a_validation_error():
    with pytest.raises(ValidationFailed):
        validate_user(["name", "email"], partial=False)


def test_json_content_types_including_suffixes_are_accepted():
    assert parse_json_object("application/json; charset=utf-8", b"{}") == {}
    assert parse_json_object("application/merge-patch+json", b"{}") == {}
    with pytest.raises(UnsupportedMediaType):
        parse_json_object("text/plain", b"{}")
    with pytest.raises(UnsupportedMediaType):
        parse_json_object(None, b"{}")
    with pytest.raises(BadRequest):
        parse_json_object("application/json", b"\xff")


def parse_error(body: bytes) -> str:
    with pytest.raises(BadRequest) as info:
        parse_json_object(JSON, body)
    assert info.value.code == 400
    return info.value.description


@pytest.mark.parametrize("depth", [JSON_DEPTH_MAX + 1, 1000, 100_000])
def test_json_nested_deeper_than_the_limit_is_400_not_a_recursion_error(depth):
    assert "nested deeper than" in parse_error(b"[" * depth + b"]" * depth)
    assert "nested deeper than" in parse_error(b'{"a":' * depth + b"1" + b"}" * depth)


def test_nesting_is_refused_before_decoding_so_a_small_stack_never_decides():
    """gevent greenlets and threads can have far less C stack than the main thread: the depth
    check must not recurse at all, and the decoder must only ever see shallow input."""
    results: list[str] = []

    def parse() -> None:
        for depth in (100_000, JSON_DEPTH_MAX):
            try:
                parse_json_object(JSON, b"[" * depth + b"]" * depth)
                results.append("ok")
            except BadRequest as exc:
                results.append(exc.description)

    old = threading.stack_size(64 * 1024)
    try:
        thread = threading.Thread(target=parse)
        thread.start()
        thread.join()
    finally:
        threading.stack_size(old)
    assert results == [f"The body is nested deeper than {JSON_DEPTH_MAX} levels.", "ok"]


def test_brackets_inside_strings_do_not_count_as_nesting():
    body = json.dumps({"name": "[{" * 500 + '\\"]', "email": "a@b.co"}).encode()
    assert parse_json_object(JSON, body)["email"] == "a@b.co"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"name": "\xff"}', "not valid UTF-8"),
        (b'{"name": "\xed\xa0\x80"}', "not valid UTF-8"),  # a surrogate encoded as UTF-8
        ('{"name": "n"}'.encode("utf-16"), "not valid UTF-8"),  # RFC 8259: UTF-8 only
        (b'\xef\xbb\xbf{"name": "n"}', "not valid JSON"),  # a byte order mark
        (b'{"name": "\\ud800"}', "unpaired surrogate"),
        (b'{"name": "\\uDFFF\\ud800"}', "unpaired surrogate"),  # the wrong order
        (b'{"\\ud800": 1}', "unpaired surrogate"),  # in a key
        (b'[[["\\udbff"]]]', "unpaired surrogate"),  # anywhere
        (b'{"name": ' + b"1" * 5000 + b"}", "too many digits"),
    ],
)
def test_invalid_unicode_or_unconvertible_json_is_400(body, says):
    assert says in parse_error(body)


def test_a_valid_surrogate_pair_escape_is_one_character():
    assert parse_json_object(JSON, b'{"name": "\\ud83d\\ude80"}') == {"name": "\U0001f680"}


@pytest.mark.parametrize("field", ["name", "email"])
@pytest.mark.parametrize(
    ("char", "says"),
    [
        ("\x00", "control characters (found U+0000)"),
        ("\x1b", "control characters"),
        ("\x7f", "control characters"),
        ("\x85", "control characters"),
        ("\u2028", "line or paragraph separators"),
        ("\u2029", "line or paragraph separators"),
        ("\u200b", "invisible formatting characters (found U+200B)"),
        ("\u202e", "invisible formatting characters"),
        ("\u2066", "invisible formatting characters"),
        ("\ufeff", "invisible formatting characters"),
        ("\u00ad", "invisible formatting characters"),
        ("\ud800", "unpaired surrogates"),
    ],
)
def test_control_and_invisible_characters_are_422_naming_the_field(field, char, says):
    data = {"name": "Ada", "email": "ada@example.com"}
    local, _, domain = data[field].partition("@")
    data[field] = f"{local[:1]}{char}{local[1:]}" + (f"@{domain}" if domain else "")
    errors = field_errors(data)
    assert set(errors) == {field}
    assert says in errors[field]


@pytest.mark.parametrize(
    "name",
    [
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian, with ZWNJ
        "\U0001f469\u200d\U0001f4bb Ada",  # an emoji ZWJ sequence
        "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # tags
        "Jean\u00a0Dupont",  # a no-break space
    ],
)
def test_names_keep_the_format_characters_scripts_and_emoji_need(name):
    assert validate_user({"name": name, "email": "a@b.co"}, partial=False)["name"] == name


@pytest.mark.parametrize("email", ["a\u200db@b.co", "a\u00a0b@b.co", "a\ue000b@b.co"])
def test_emails_refuse_every_invisible_space_or_private_character(email):
    assert "email" in field_errors({"name": "n", "email": email})


@pytest.mark.parametrize("strict", [False, True])
def test_the_documented_character_class_is_exactly_what_validation_refuses(strict):
    refused = re.compile(refused_characters(strict=strict))
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue  # a 400 before validation; a JSON Schema instance cannot hold one
        ch = chr(code)
        assert bool(refused.match(ch)) == bool(_character_error(ch, strict=strict)), hex(code)


class Stream:
    """A body stream that hands out `data` and then raises `error` (as gunicorn's does)."""

    def __init__(self, data: bytes, error: Exception | None = None) -> None:
        self.data, self.error, self.reads = io.BytesIO(data), error, 0

    def read(self, size: int) -> bytes:
        self.reads += 1
        piece = self.data.read(size)
        if not piece and self.error is not None:
            raise self.error
        return piece


def test_body_over_the_limit_is_413_under_every_framing():
    stream = Stream(b"x" * 2000)
    with pytest.raises(BodyTooLarge):  # by its Content-Length: refused without reading
        read_body(stream, 2000, 1024)
    assert stream.reads == 0
    with pytest.raises(BodyTooLarge):  # chunked, or no length at all: by what arrives
        read_body(Stream(b"x" * 1025), None, 1024)
    assert read_body(Stream(b"x" * 1024), None, 1024) == b"x" * 1024
    assert read_body(Stream(b"x" * 1024), 1024, 1024) == b"x" * 1024


@pytest.mark.parametrize(
    ("error", "kind", "says"),
    [
        (InvalidChunkSize(b"zz"), BodyUnreadable, "Invalid chunk size"),
        (ChunkMissingTerminator(b"XX"), BodyUnreadable, "chunk terminator"),
        (NoMoreData(b""), BodyUnreadable, "closed before the body ended"),
        (ConnectionResetError(104, "reset"), BodyUnreadable, "reset"),
        (TimeoutError(), BodyTimedOut, "did not arrive in time"),
    ],
)
def test_body_read_errors_are_4xx_that_close_the_connection(error, kind, says):
    with pytest.raises(kind) as info:
        read_body(Stream(b'{"na', error), None, 1024)
    assert says in info.value.description
    assert info.value.code in (400, 408)


def test_body_shorter_than_its_content_length_is_400():
    with pytest.raises(BodyUnreadable) as info:
        read_body(Stream(b"{}"), 20, 1024)
    assert "2 of the 20 bytes" in info.value.description


def test_page_parameters_accept_only_ascii_digits_up_to_the_largest_id():
    assert parse_page(MultiDict()) == (20, 0)
    assert parse_page(MultiDict({"limit": "500", "after": "7"})) == (100, 7)
    assert parse_page(MultiDict({"limit": str(ID_MAX), "after": str(ID_MAX)})) == (100, ID_MAX)
    for bad in (
        {"limit": "1_0"},
        {"limit": "+5"},
        {"after": "٣"},
        {"after": "-1"},
        {"limit": "0"},
        {"after": str(ID_MAX + 1)},
    ):
        with pytest.raises(ValidationFailed) as info:
            parse_page(MultiDict(bad))
        assert info.value.detail == "The query string failed validation."


def test_a_page_parameter_given_twice_is_422():
    with pytest.raises(ValidationFailed) as info:
        parse_page(MultiDict([("after", "1"), ("after", "2")]))
    assert info.value.errors == [{"field": "after", "message": "must be given at most once"}]
