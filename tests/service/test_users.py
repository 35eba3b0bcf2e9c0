"""service/users.py: the /users API, every status code it promises, against a real database."""

from __future__ import annotations

import threading

import pytest

PROBLEM = "application/problem+json"


def create(client, name="Ada Lovelace", email="ada@example.com"):
    return client.post("/users", json={"name": name, "email": email})


def test_create_returns_201_the_user_and_its_location(client):
    response = create(client)
    assert response.status_code == 201
    user = response.get_json()
    assert set(user) == {"id", "name", "email", "created_at", "updated_at"}
    assert (user["name"], user["email"]) == ("Ada Lovelace", "ada@example.com")
    assert user["created_at"].endswith("Z")
    assert response.headers["Location"] == f"/users/{user['id']}"
    assert client.get(response.headers["Location"]).get_json() == user


def test_create_stores_utf8mb4_text_intact(client):
    response = create(client, name="Zoë 🚀 Ærø 中文", email="zoe@example.com")
    assert response.status_code == 201
    fetched = client.get(response.headers["Location"]).get_json()
    assert fetched["name"] == "Zoë 🚀 Ærø 中文"


def test_duplicate_email_is_409_case_insensitively(client):
    assert create(client, email="Grace@Example.com").status_code == 201
    response = create(client, name="Other", email="grace@EXAMPLE.com")
    assert response.status_code == 409
    assert response.mimetype == PROBLEM
    assert response.get_json()["status"] == 409


def test_concurrent_creates_of_one_email_give_exactly_one_201(app):
    results: list[int] = []
    barrier = threading.Barrier(12)

    def worker(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        results.append(create(client, name=f"racer {i}", email="race@example.com").status_code)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201] + [409] * 11


def test_get_unknown_user_is_404_problem(client):
    response = client.get("/users/999999")
    assert response.status_code == 404
    assert response.mimetype == PROBLEM
    assert response.get_json()["detail"] == "No user with id 999999."


def test_list_paginates_by_id_with_a_next_link_until_the_end(client):
    ids = [
        create(client, name=f"u{i}", email=f"u{i}@example.com").get_json()["id"] for i in range(5)
    ]
    page = client.get("/users?limit=2").get_json()
    seen = [u["id"] for u in page["items"]]
    while page["next"]:
        page = client.get(page["next"]).get_json()
        seen += [u["id"] for u in page["items"]]
    assert seen == ids
    assert client.get("/users?limit=5").get_json()["next"] is None


def test_list_defaults_to_20_and_caps_the_limit_at_100(client, admin_conn):
    with admin_conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO users (name, email, created_at, updated_at) "
            "VALUES (%s, %s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
            [(f"n{i}", f"n{i}@example.com") for i in range(105)],
        )
    assert len(client.get("/users").get_json()["items"]) == 20
    capped = client.get("/users?limit=1000").get_json()
    assert len(capped["items"]) == 100
    assert "limit=100" in capped["next"]


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "limit=-5", "after=x", "after=1.5"])
def test_bad_page_parameters_are_422_naming_the_field(client, query):
    response = client.get(f"/users?{query}")
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == query.split("=")[0]


def test_patch_updates_only_given_fields_and_bumps_updated_at(client):
    user = create(client).get_json()
    response = client.patch(f"/users/{user['id']}", json={"name": "Ada King"})
    assert response.status_code == 200
    updated = response.get_json()
    assert updated["name"] == "Ada King"
    assert updated["email"] == user["email"]
    assert updated["created_at"] == user["created_at"]
    assert updated["updated_at"] > user["updated_at"]


def test_patch_to_an_email_in_use_is_409_and_changes_nothing(client):
    create(client, email="taken@example.com")
    user = create(client, name="B", email="b@example.com").get_json()
    response = client.patch(f"/users/{user['id']}", json={"email": "TAKEN@example.com"})
    assert response.status_code == 409
    assert client.get(f"/users/{user['id']}").get_json()["email"] == "b@example.com"


def test_patch_unknown_user_is_404(client):
    assert client.patch("/users/424242", json={"name": "x"}).status_code == 404


def test_patch_with_empty_object_is_422(client):
    user = create(client).get_json()
    response = client.patch(f"/users/{user['id']}", json={})
    assert response.status_code == 422


def test_delete_is_204_then_404(client):
    user = create(client).get_json()
    response = client.delete(f"/users/{user['id']}")
    assert response.status_code == 204
    assert response.data == b""
    assert client.get(f"/users/{user['id']}").status_code == 404
    assert client.delete(f"/users/{user['id']}").status_code == 404


def test_malformed_json_is_400(client):
    response = client.post("/users", data='{"name": ', content_type="application/json")
    assert response.status_code == 400
    assert response.mimetype == PROBLEM
    assert "not valid JSON" in response.get_json()["detail"]


def test_wrong_content_type_is_415(client):
    response = client.post(
        "/users", data="name=x", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert response.mimetype == PROBLEM


def test_body_over_the_limit_is_413_and_nothing_is_stored(client):
    big = {"name": "x" * 70_000, "email": "big@example.com"}
    response = client.post("/users", json=big)
    assert response.status_code == 413
    assert response.mimetype == PROBLEM
    assert client.get("/users").get_json()["items"] == []


def test_validation_failure_is_422_listing_every_bad_field(client):
    response = client.post("/users", json={"name": "", "email": "not-an-email", "admin": True})
    assert response.status_code == 422
    errors = {e["field"]: e["message"] for e in response.get_json()["errors"]}
    assert set(errors) == {"name", "email", "admin"}


def test_unknown_route_is_404_problem_not_html(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.mimetype == PROBLEM


def test_wrong_method_is_405_with_allow_header(client):
    response = client.put("/users/1", json={})
    assert response.status_code == 405
    assert response.mimetype == PROBLEM
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "PATCH", "DELETE"}


def test_unexpected_exception_is_a_bare_500_problem_without_trace(app, client):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = client.get("/boom")
    assert response.status_code == 500
    assert response.mimetype == PROBLEM
    assert "secret internals" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_request_id_is_echoed_or_generated(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == (
        "abc-123"
    )
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32


def test_links_keep_the_mount_point_when_served_under_a_prefix(client):
    created = client.post(
        "/users", json={"name": "P", "email": "p@example.com"}, base_url="http://localhost/api/"
    )
    assert created.headers["Location"] == f"/api/users/{created.get_json()['id']}"
    client.post("/users", json={"name": "Q", "email": "q@example.com"})
    page = client.get("/users?limit=1", base_url="http://localhost/api/").get_json()
    assert page["next"] == f"/api/users?after={page['items'][0]['id']}&limit=1"
