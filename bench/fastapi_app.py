"""What many would pick instead: FastAPI with sync (def) handlers under uvicorn.

The same three routes, SQL and JSON shapes as bench/baseline_app.py, written the way FastAPI's
documentation writes them (a pydantic model for the POST body, dicts returned). FastAPI runs
def handlers in a thread pool (anyio's, 40 threads), so a PyMySQL connection is kept per thread
(they must not be shared across threads): one per thread that has served a request, at most
as many per worker as requests were in flight at once. No metrics, logs beyond uvicorn's
default access log, or validation beyond pydantic's.

    DATABASE_HOST=... python -m uvicorn bench.fastapi_app:app --workers 2
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from typing import Any

import pymysql
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

app = FastAPI()

COLUMNS = "id, name, email, created_at, updated_at"
LIMIT_DEFAULT, LIMIT_MAX = 20, 100  # as the service's list page

_state = threading.local()


class NewUser(BaseModel):
    name: str
    email: str


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
def list_users(limit: int = LIMIT_DEFAULT, after: int = 0) -> dict[str, Any]:
    limit = min(limit, LIMIT_MAX)
    with _conn().cursor() as cursor:
        cursor.execute(
            f"SELECT {COLUMNS} FROM users WHERE id > %s ORDER BY id LIMIT %s",  # noqa: S608
            (after, limit + 1),
        )
        rows = cursor.fetchall()
    items = [_user(row) for row in rows[:limit]]
    more = len(rows) > limit
    return {
        "items": items,
        "next": f"/users?after={items[-1]['id']}&limit={limit}" if more else None,
    }


@app.get("/users/{user_id}")
def get_user(user_id: int) -> dict[str, Any]:
    with _conn().cursor() as cursor:
        cursor.execute(f"SELECT {COLUMNS} FROM users WHERE id = %s", (user_id,))  # noqa: S608
        row = cursor.fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="not found")
    return _user(row)


@app.post("/users", status_code=201)
def create_user(user: NewUser) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with _conn().cursor() as cursor:
        cursor.execute(
            "INSERT INTO users (name, email, created_at, updated_at) VALUES (%s, %s, %s, %s)",
            (user.name, user.email, now, now),
        )
        user_id = cursor.lastrowid
    return _user((user_id, user.name, user.email, now, now))
