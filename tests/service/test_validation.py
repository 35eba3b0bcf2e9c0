"""service/validation.py: field rules and request parsing, without Flask or a database."""

from __future__ import annotations

import pytest
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from service.errors import ValidationFailed
from service.validation import parse_json_object, parse_page, validate_user


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


def test_name_of_exactly_100_characters_is_accepted_and_trimmed():
    assert (
        validate_user({"name": " " + "x" * 100 + " ", "email": "a@b.co"}, partial=False)["name"]
        == "x" * 100
    )


def test_partial_update_accepts_one_field_and_rejects_none():
    assert validate_user({"email": "a@b.co"}, partial=True) == {"email": "a@b.co"}
    with pytest.raises(ValidationFailed):
        validate_user({}, partial=True)


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


def test_page_parameters_accept_only_ascii_digits():
    assert parse_page({}) == (20, 0)
    assert parse_page({"limit": "500", "after": "7"}) == (100, 7)
    for bad in ({"limit": "1_0"}, {"limit": "+5"}, {"after": "٣"}, {"after": "-1"}):
        with pytest.raises(ValidationFailed):
            parse_page(bad)
