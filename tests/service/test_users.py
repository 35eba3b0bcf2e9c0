"""service/users.py: the /users API, every status code it promises, against a real database."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from tests.support.web import WebProcess

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


@pytest.mark.parametrize(
    "incoming",
    ["x" * 201, "has space", "tab\there", "caf\u00e9", "bell\x07"],
    ids=["too-long", "space", "tab", "non-ascii", "control"],
)
def test_request_id_that_is_not_short_visible_ascii_is_replaced(client, incoming):
    echoed = client.get("/healthz", headers={"X-Request-ID": incoming}).headers["X-Request-ID"]
    assert echoed != incoming
    assert len(echoed) == 32 and all(c in "0123456789abcdef" for c in echoed)


def test_links_keep_the_mount_point_when_served_under_a_prefix(client):
    created = client.post(
        "/users", json={"name": "P", "email": "p@example.com"}, base_url="http://localhost/api/"
    )
    assert created.headers["Location"] == f"/api/users/{created.get_json()['id']}"
    client.post("/users", json={"name": "Q", "email": "q@example.com"})
    page = client.get("/users?limit=1", base_url="http://localhost/api/").get_json()
    assert page["next"] == f"/api/users?after={page['items'][0]['id']}&limit=1"


# --- Hostile input against the real process: gunicorn frames the body, so the Flask test
# client cannot show what a chunked or truncated body does. Raw sockets, HTTP/1.1.

KEEP_ALIVE_WORKER = "--worker-class gthread --threads 2"  # keeps connections open by default


def http(web, head: bytes, body: bytes = b"", *, half_close: bool = False) -> dict:
    """Send one request and read its response. After a response that says `Connection: close`,
    read on (up to 10 s) to see whether the server really closes: `closed`, and any bytes
    that followed (`after`: a second response would mean a second request was served)."""
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as sock:
        sock.sendall(head + b"\r\n\r\n" + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        reader = sock.makefile("rb")
        status = int(reader.readline().split()[1])
        headers = {}
        while (line := reader.readline().rstrip(b"\r\n")) != b"":
            name, _, value = line.partition(b":")
            headers[name.decode().lower()] = value.strip().decode("latin-1")
        payload = reader.read(int(headers["content-length"]))
        after, closed = b"", False
        if headers.get("connection") == "close":
            try:
                after = reader.read()  # until the server closes
                closed = True
            except ConnectionResetError:
                closed = True
            except TimeoutError:
                pass
    return {"status": status, "headers": headers, "body": payload, "closed": closed, "after": after}


def post_head(framing: bytes, path: bytes = b"/users") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n%s" % (
        path,
        framing,
    )


def chunked(data: bytes, size: int = 4096) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


CHUNKED = b"Transfer-Encoding: chunked"


def length(body: bytes) -> bytes:
    return b"Content-Length: %d" % len(body)


def assert_problem(response: dict, status: int, says: str) -> None:
    assert response["status"] == status, response
    assert response["headers"]["content-type"] == PROBLEM
    detail = json.loads(response["body"])["detail"]
    assert says in detail, detail


@pytest.fixture(params=["default worker", "keep-alive worker"])
def web_process(request, database, tmp_path):
    extra = {"MAX_BODY_BYTES": str(256 * 1024)}
    if request.param == "keep-alive worker":
        extra["GUNICORN_CMD_ARGS"] = KEEP_ALIVE_WORKER
    web = WebProcess({**database, **extra}, tmp_path)
    yield web
    assert web.stop() == 0
    lines = web.lines()
    assert not [line for line in lines if '"level": "ERROR"' in line], "unhandled exception"
    assert all(line.startswith("{") for line in lines)


def test_a_chunked_body_within_the_limit_is_accepted(web_process):
    body = json.dumps({"name": "Chunked", "email": "chunked@example.com"}).encode()
    response = http(web_process, post_head(CHUNKED), chunked(body, size=7))
    assert response["status"] == 201
    assert json.loads(response["body"])["name"] == "Chunked"


@pytest.mark.slow
def test_a_body_over_the_limit_is_413_under_every_framing_and_closes(web_process):
    big = json.dumps({"name": "x" * 300_000, "email": "big@example.com"}).encode()
    for framing, body in (
        (length(big), big),  # refused by its Content-Length, before it is read
        (CHUNKED, chunked(big)),  # refused as soon as what arrived passes the limit
        (b"Content-Length: 999999999", b"{}"),  # a length announced, never sent
    ):
        response = http(web_process, post_head(framing), body)
        assert_problem(response, 413, "larger than 262144 bytes")
        assert response["headers"]["connection"] == "close"
        assert response["closed"]
    assert web_process.request("GET", "/users")[2] == b'{"items":[],"next":null}\n'


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "body", "half_close", "says"),
    [
        ("bad chunk size", b"zz\r\n{}\r\n0\r\n\r\n", False, "Invalid chunk size"),
        ("missing chunk terminator", b"2\r\n{}XX0\r\n\r\n", False, "chunk terminator"),
        ("body cut off mid-chunk", b"10\r\n{}", True, "closed before the body ended"),
        ("no last chunk", b"2\r\n{}\r\n", True, "closed before the body ended"),
    ],
)
def test_malformed_chunked_framing_is_400_problem_and_closes_the_connection(
    web_process, name, body, half_close, says
):
    # Where the client did not hang up, a second request follows on the same connection: it
    # must never be served, since where it starts is unknown after a framing error (the bytes
    # could be a smuggled request).
    smuggled = b"" if half_close else b"GET /users HTTP/1.1\r\nHost: t\r\n\r\n"
    response = http(web_process, post_head(CHUNKED), body + smuggled, half_close=half_close)
    assert_problem(response, 400, says)
    assert response["headers"]["connection"] == "close"
    assert response["closed"]
    assert response["after"] == b""


@pytest.mark.slow
def test_a_body_shorter_than_its_content_length_is_400(web_process):
    response = http(web_process, post_head(b"Content-Length: 50"), b'{"name":', half_close=True)
    assert_problem(response, 400, "8 of the 50 bytes")
    assert response["headers"]["connection"] == "close"


@pytest.mark.slow
def test_json_nested_100k_deep_is_400_from_the_real_worker(web_process):
    deep = b"[" * 100_000 + b"]" * 100_000  # 200 kB: within this process's 256 kB limit
    for framing, body in ((length(deep), deep), (CHUNKED, chunked(deep))):
        assert_problem(http(web_process, post_head(framing), body), 400, "nested deeper than 32")


@pytest.mark.slow
def test_hostile_text_never_gets_a_500_html_or_traceback(web_process):
    """Every class of bad input the issue names, each a precise 4xx problem document."""
    cases = [
        (b'{"name": "\\ud800", "email": "s@example.com"}', 400, "unpaired surrogate"),
        (b'{"name": "\xed\xa0\x80", "email": "s@example.com"}', 400, "not valid UTF-8"),
        (b'{"name": "\xff", "email": "s@example.com"}', 400, "not valid UTF-8"),
        ('{"name": "n", "email": "s@example.com"}'.encode("utf-16"), 400, "not valid UTF-8"),
        (b'{"name": ' + b"9" * 5000 + b"}", 400, "too many digits"),
        (b'{"name": "n", "email": "a\\u0000b@example.com"}', 422, "validation"),
        (b'{"name": "a\\u200bb", "email": "z@example.com"}', 422, "validation"),
    ]
    for body, status, says in cases:
        response = http(web_process, post_head(length(body)), body)
        assert_problem(response, status, says)
        assert b"Traceback" not in response["body"]
    for path in (b"/users?limit=%ff", b"/users?after=%ed%a0%80", b"/users?after=1&after=2"):
        response = http(web_process, b"GET %s HTTP/1.1\r\nHost: t" % path)
        assert_problem(response, 422, "query string failed validation")
    for path in (b"/users/%ff", b"/%ed%a0%80", b"/users/1%00"):
        assert_problem(http(web_process, b"GET %s HTTP/1.1\r\nHost: t" % path), 404, "not found")


@pytest.mark.parametrize(
    "path", ["/users//1", "//users", "/users/1//", "/static//x", "/healthz/", "/users/1/"]
)
def test_doubled_or_trailing_slashes_are_a_404_problem_not_an_html_redirect(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == PROBLEM
    assert "Location" not in response.headers


@pytest.mark.parametrize("method", ["TRACE", "PUT", "FOO", "CONNECT"])
def test_unknown_methods_are_a_405_problem(client, method):
    response = client.open("/users", method=method)
    assert response.status_code == 405
    assert response.mimetype == PROBLEM
