"""service/metrics.py: request metrics by route template, probes excluded, a database metric."""

from __future__ import annotations

import http.client
import re
import time

import pytest

from tests.support.web import WebProcess


def scrape(client) -> str:
    return client.get("/metrics").get_data(as_text=True)


def test_requests_are_labelled_by_route_template_not_raw_path(client):
    for user_id in (1, 2, 3):
        client.get(f"/users/{user_id}")
    text = scrape(client)
    assert 'route="/users/<int:user_id>"' in text
    assert "/users/1" not in text and "/users/2" not in text


def test_unmatched_paths_share_one_label(client):
    client.get("/wp-login.php")
    client.get("/.env")
    text = scrape(client)
    assert 'route="<unmatched>"' in text
    assert "wp-login" not in text


def test_probe_and_metrics_requests_are_not_counted(client):
    for path in ("/healthz", "/readyz", "/metrics"):
        client.get(path)
    text = scrape(client)
    for path in ("/healthz", "/readyz", "/metrics"):
        assert f'route="{path}"' not in text


def test_database_query_latency_is_exported_by_operation(client):
    client.post("/users", json={"name": "Q", "email": "q@example.com"})
    client.get("/users")
    text = scrape(client)
    assert 'users_db_query_duration_seconds_count{operation="insert"} 1.0' in text
    assert 'users_db_query_duration_seconds_count{operation="select"} 1.0' in text


def test_each_app_has_its_own_registry(app, database):
    from service import create_app
    from service.settings import load_settings

    other = create_app(load_settings(database), multiprocess_metrics=False)
    app.test_client().get("/users")
    assert 'method="GET",route="/users"' not in scrape(other.test_client())


def series(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def test_made_up_methods_share_the_other_label_and_keep_the_series_bounded(client):
    # A client may send any token as the method; each one must not become a series.
    for i in range(300):
        client.open(f"/users/{i}", method=f"X{i:04d}")
        client.open(f"/nowhere/{i}", method=f"Y{i:04d}")
    text = scrape(client)
    durations = series(text, "flask_http_request_duration_seconds_count")
    assert 'method="other",route="<unmatched>",status="405"' in "\n".join(durations)
    assert 'method="other",route="<unmatched>",status="404"' in "\n".join(durations)
    assert len(durations) == 2
    assert len(series(text, "flask_http_request_total")) == 2
    assert "X0001" not in text and "Y0299" not in text


def test_known_methods_keep_their_own_label(client):
    client.get("/users")
    client.open("/users", method="PUT")
    text = scrape(client)
    assert 'flask_http_request_total{method="GET",status="200"} 1.0' in text
    assert 'flask_http_request_total{method="PUT",status="405"} 1.0' in text


def test_server_errors_count_as_exceptions(client, monkeypatch):
    from service import users

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(users, "parse_page", broken)
    assert client.get("/users").status_code == 500
    text = scrape(client)
    assert 'flask_http_request_exceptions_total{method="GET",status="500"} 1.0' in text
    assert 'flask_http_request_exceptions_total{method="GET",status="200"}' not in text


def test_exporter_info_is_still_exported(client):
    assert "flask_exporter_info{" in scrape(client)


@pytest.mark.slow
def test_a_flood_of_made_up_methods_and_paths_leaves_the_series_count_fixed(database, tmp_path):
    """Against the real web process (2 workers, multiprocess files): 2,000 requests with
    made-up methods on made-up paths and on real routes add no series beyond the fixed set."""
    web = WebProcess(database, tmp_path)
    try:
        before = scrape_process(web)
        conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
        deadline = time.monotonic() + 60
        for i in range(1000):
            assert time.monotonic() < deadline, "the flood took more than 60 s"
            letters = "".join(chr(ord("A") + int(d)) for d in f"{i:04d}")
            for path in (f"/scan/{i}.php", "/users"):
                conn.request(f"Z{letters}", path)
                response = conn.getresponse()
                response.read()
                assert response.status in (404, 405)
                assert response.getheader("Content-Type") == "application/problem+json"
        conn.close()
        started = time.monotonic()
        after = scrape_process(web)
        print(f"scrape after the flood: {time.monotonic() - started:.3f} s")
        for name in REQUEST_METRICS:
            grown = label_sets(after, name) - label_sets(before, name)
            assert len(grown) <= 2, (name, sorted(grown))  # method="other" x (404, 405)
        assert "ZAAAB" not in after and "/scan/" not in after
        assert 'flask_http_request_total{method="other",status="404"} 1000.0' in after
        assert 'flask_http_request_total{method="other",status="405"} 1000.0' in after
    finally:
        assert web.stop() == 0


REQUEST_METRICS = (
    "flask_http_request_duration_seconds_bucket",
    "flask_http_request_duration_seconds_count",
    "flask_http_request_total",
)


def label_sets(text: str, name: str) -> set[str]:
    """The distinct label sets of a metric, values and histogram buckets (`le`) left out."""
    return {re.sub(r'le="[^"]*",?', "", line.rsplit(" ", 1)[0]) for line in series(text, name)}


def scrape_process(web) -> str:
    status, _, body = web.request("GET", "/metrics")
    assert status == 200
    return body.decode()
