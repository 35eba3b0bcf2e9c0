"""The /users resource: routes and their SQL, parameterised and in plain sight."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pymysql
from flask import Blueprint, Response, current_app, jsonify, request
from pymysql.constants import ER
from werkzeug.exceptions import NotFound

from service.db import get_db
from service.errors import Conflict
from service.validation import FIELDS, parse_json_object, parse_page, read_body, validate_user

bp = Blueprint("users", __name__, url_prefix="/users")

# Column names come from the field table (validation.USER_FIELDS), never from input.
COLUMNS = ", ".join(("id", *FIELDS, "created_at", "updated_at"))
_WRITTEN = (*FIELDS, "created_at", "updated_at")
_VALUES = ", ".join(["%s"] * len(_WRITTEN))
_INSERT = f"INSERT INTO users ({', '.join(_WRITTEN)}) VALUES ({_VALUES})"  # noqa: S608 - constant


def _iso(value: dt.datetime) -> str:
    return value.isoformat(timespec="microseconds") + "Z"  # stored as UTC, naive


def _user(row: tuple[Any, ...]) -> dict[str, Any]:
    *values, created_at, updated_at = row[1:]
    return {
        "id": row[0],
        **dict(zip(FIELDS, values, strict=True)),
        "created_at": _iso(created_at),
        "updated_at": _iso(updated_at),
    }


def _body(*, partial: bool) -> dict[str, str]:
    # gunicorn's own stream when it terminates the body itself (it does under every framing);
    # see read_body for why not werkzeug's request.stream.
    env = request.environ
    stream = request.input_stream if env.get("wsgi.input_terminated") else request.stream
    body = read_body(stream, request.content_length, current_app.config["MAX_CONTENT_LENGTH"])
    return validate_user(parse_json_object(request.content_type, body), partial=partial)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@contextlib.contextmanager
def _unique_email() -> Iterator[None]:
    """Turn the unique index's duplicate-key error into a 409: the database, not a racy
    SELECT-then-INSERT, decides which of two concurrent requests wins."""
    try:
        yield
    except pymysql.err.IntegrityError as exc:
        if exc.args[0] != ER.DUP_ENTRY:
            raise
        raise Conflict("A user with this email already exists.") from None


def _url(tail: str) -> str:
    """A link into this blueprint, under the app's mount point. Written out rather than built
    with url_for, which binds a URL adapter on each call: about a tenth of a request's CPU."""
    return f"{request.root_path}{bp.url_prefix}{tail}"


def _not_found(user_id: int) -> NotFound:
    return NotFound(f"No user with id {user_id}.")


@bp.post("")
def create_user() -> tuple[Response, int, dict[str, str]]:
    fields = _body(partial=False)
    now = _now()
    with _unique_email():
        _, user_id = get_db().execute("insert", _INSERT, (*fields.values(), now, now))
    user = _user((user_id, *fields.values(), now, now))
    return jsonify(user), 201, {"Location": _url(f"/{user_id}")}


@bp.get("")
def list_users() -> Response:
    limit, after = parse_page(request.args)
    rows = get_db().query(
        f"SELECT {COLUMNS} FROM users WHERE id > %s ORDER BY id LIMIT %s",  # noqa: S608 - constant
        (after, limit + 1),
    )
    items = [_user(row) for row in rows[:limit]]
    more = len(rows) > limit
    next_url = _url(f"?after={items[-1]['id']}&limit={limit}") if more else None
    return jsonify(items=items, next=next_url)


@bp.get("/<int:user_id>")
def get_user(user_id: int) -> Response:
    rows = get_db().query(f"SELECT {COLUMNS} FROM users WHERE id = %s", (user_id,))  # noqa: S608
    if not rows:
        raise _not_found(user_id)
    return jsonify(_user(rows[0]))


@bp.patch("/<int:user_id>")
def update_user(user_id: int) -> Response:
    fields = _body(partial=True)
    # Column names come from the validated, fixed set in validation.FIELDS, never from input.
    assignments = ", ".join(f"{column} = %s" for column in fields)
    db = get_db()
    with _unique_email():
        updated, _ = db.execute(
            "update",
            f"UPDATE users SET {assignments}, updated_at = %s WHERE id = %s",  # noqa: S608
            (*fields.values(), _now(), user_id),
        )
    if not updated:
        raise _not_found(user_id)
    rows = db.query(f"SELECT {COLUMNS} FROM users WHERE id = %s", (user_id,))  # noqa: S608
    if not rows:  # deleted between the two statements
        raise _not_found(user_id)
    return jsonify(_user(rows[0]))


@bp.delete("/<int:user_id>")
def delete_user(user_id: int) -> tuple[str, int]:
    deleted, _ = get_db().execute("delete", "DELETE FROM users WHERE id = %s", (user_id,))
    if not deleted:
        raise _not_found(user_id)
    current_app.logger.info("user deleted", extra={"user_id": user_id})
    return "", 204
