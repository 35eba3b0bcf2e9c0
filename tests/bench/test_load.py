"""bench/load.py: the wrk scripts and the refusal to run without wrk."""

from __future__ import annotations

import pytest

from bench import load


def test_without_wrk_the_bench_refuses_and_names_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(load.WrkMissingError, match=r"Debian package wrk \(apt-get install wrk\)"):
        load.wrk_binary()


@pytest.mark.parametrize("request_kind", load.REQUESTS)
def test_only_the_close_mode_sends_connection_close(request_kind):
    close = load.script(load.Load(request_kind, "close", 1, 9, "p-"))
    keep = load.script(load.Load(request_kind, "keepalive", 1, 9, "p-"))
    assert '["Connection"] = "close"' in close
    assert "Connection" not in keep


def test_post_emails_carry_the_sample_prefix_the_thread_and_a_counter():
    text = load.script(load.Load("post", "keepalive", 1, 9, "b0-service-x-"))
    assert "\"email\":\"b0-service-x-' .. thread_no .. '-' .. counter" in text
    assert '["Content-Type"] = "application/json"' in text


def test_get_picks_ids_from_the_seeded_range_seeded_per_thread():
    text = load.script(load.Load("get", "keepalive", 17, 1016, ""))
    assert "math.random(17, 1016)" in text
    assert "+ thread_no)" in text
