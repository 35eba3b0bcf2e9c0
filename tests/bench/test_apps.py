"""bench/baseline_app.py: the same JSON as the service for the same rows, so that the benchmark
compares the cost of the same answers (the FastAPI twin is checked by the harness itself)."""

from __future__ import annotations

import pytest

from bench import baseline_app


@pytest.fixture
def baseline(database, monkeypatch):
    for key, value in database.items():
        monkeypatch.setenv(key, value)
    baseline_app._state.conn = None  # a connection from an earlier test's database
    yield baseline_app.app.test_client()
    conn = getattr(baseline_app._state, "conn", None)
    if conn is not None:
        conn.close()
        baseline_app._state.conn = None


def _create(client, n: int) -> dict:
    response = client.post("/users", json={"name": f"User {n}", "email": f"u{n}@example.com"})
    assert response.status_code == 201
    return response.get_json()


def test_baseline_get_by_id_answers_what_the_service_answers(client, baseline):
    user = _create(client, 1)
    mine, theirs = client.get(f"/users/{user['id']}"), baseline.get(f"/users/{user['id']}")
    assert (mine.status_code, theirs.status_code) == (200, 200)
    assert theirs.get_json() == mine.get_json() == user


def test_baseline_list_page_has_the_services_items_and_next_link(client, baseline):
    ids = [_create(client, n)["id"] for n in range(3)]
    mine, theirs = client.get("/users?limit=2"), baseline.get("/users?limit=2")
    assert theirs.get_json() == mine.get_json()
    assert [u["id"] for u in theirs.get_json()["items"]] == ids[:2]
    assert theirs.get_json()["next"] == f"/users?after={ids[1]}&limit=2"
    last = baseline.get(f"/users?after={ids[1]}&limit=2").get_json()
    assert last == client.get(f"/users?after={ids[1]}&limit=2").get_json()
    assert last["next"] is None


def test_baseline_post_returns_201_and_the_stored_user_in_the_services_shape(client, baseline):
    response = baseline.post("/users", json={"name": "Ada", "email": "ada@example.com"})
    assert response.status_code == 201
    created = response.get_json()
    assert list(created) == ["id", "name", "email", "created_at", "updated_at"]
    assert client.get(f"/users/{created['id']}").get_json() == created
