"""The baseline: the least a Flask + PyMySQL app can do to serve the same three routes.

One connection per worker, opened lazily on the first request (after gunicorn has forked) and
kept in a thread-local (one thread per sync worker; one connection per thread under gthread, as
PyMySQL connections must not be shared across threads); autocommit so each INSERT is durable on
its own. No metrics, no JSON
logs, no validation, no request ids, no reconnect logic. It reads the same DATABASE_* variables
as the service (DATABASE_PASSWORD only) and uses the table that `python -m service migrate`
creates.

    DATABASE_HOST=... python -m gunicorn -w 2 bench.baseline_app:app
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from typing import Any

import pymysql
from flask import Flask, Response, jsonify, request

app = Flask(__name__)
app.json.sort_keys = False  # as the service does

COLUMNS = "id, name, email, created_at, updated_at"
LIMIT_DEFAULT, LIMIT_MAX = 20, 100  # as the service's list page

_state = threading.local()


def _conn() -> pymysql.Connection:
    conn = getattr(_state, "conn", None)
    if conn is None:
        conn = pymysql.connect(
            host=os.environ["DATABASE_HOST"],
            port=int(os.environ.get("DATABASE_PORT", "3306")),
            user=os.environ["DATABASE_USER"],
            password=os.environ["DATABASE_PASSWORD"],
            database=os.environ["DATABASE_NAME"],
            charset="utf8mb4",
            autocommit=True,
        )
        _state.conn = conn
    return conn


def _user(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "name": row[1],
        "email": row[2],
        "created_at": row[3].isoformat(timespec="microseconds") + "Z",
        "updated_at": row[4].isoformat(timespec="microseconds") + "Z",
    }


@app.get("/users")
def list_users() -> Response:
    limit = min(request.args.get("limit", LIMIT_DEFAULT, type=int), LIMIT_MAX)
    after = request.args.get("after", 0, type=int)
    with _conn().cursor() as cursor:
        cursor.execute(
            f"SELECT {COLUMNS} FROM users WHERE id > %s ORDER BY id LIMIT %s",  # noqa: S608
            (after, limit + 1),
        )
        rows = cursor.fetchall()
    items = [_user(row) for row in rows[:limit]]
    more = len(rows) > limit
    next_url = f"/users?after={items[-1]['id']}&limit={limit}" if more else None
    return jsonify(items=items, next=next_url)


@app.get("/users/<int:user_id>")
def get_user(user_id: int) -> Response | tuple[Response, int]:
    with _conn().cursor() as cursor:
        cursor.execute(
            f"SELECT {COLUMNS} FROM users WHERE id = %s",  # noqa: S608 - constant columns
            (user_id,),
        )
        row = cursor.fetchone()
    if row is None:
        return jsonify(error="not found"), 404
    return jsonify(_user(row))


@app.post("/users")
def create_user() -> tuple[Response, int]:
    data = request.get_json()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with _conn().cursor() as cursor:
        cursor.execute(
            "INSERT INTO users (name, email, created_at, updated_at) VALUES (%s, %s, %s, %s)",
            (data["name"], data["email"], now, now),
        )
        user_id = cursor.lastrowid
    return jsonify(_user((user_id, data["name"], data["email"], now, now))), 201
