"""Factor VII, port binding: the service is self-contained and exports HTTP by binding $PORT;
no web server is injected in front of it."""

from __future__ import annotations

from tests.support.processes import listening_ports, tree
from tests.support.web import WebProcess


def test_the_web_process_binds_port_on_every_interface_and_speaks_http_itself(database, tmp_path):
    web = WebProcess(database, tmp_path)
    try:
        assert listening_ports(tree(web.process.pid)) == {("0.0.0.0", web.port)}  # noqa: S104
        status, headers, _ = web.request("GET", "/healthz")
        assert status == 200
        assert headers["Server"].startswith("gunicorn")
    finally:
        assert web.stop() == 0
