"""service/metrics.py: request metrics by route template, probes excluded, a database metric."""

from __future__ import annotations


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
