"""The small programs the chart runs around the web process, as functions of the service
(`python -m service <command>` in cli.py) instead of Python strings in the templates:

- `wait_for_schema`: the web pod's init container holds it back until `check` passes;
- `wait_for_tcp`: the migration Job's init container waits for the database to listen;
- `copy_entries`: with web.reload, the code is copied into a writable emptyDir for file sync;
- `smoke`: `helm test` and skaffold's verify step call /readyz and /users through the Service.

Each logs one JSON line per attempt (service/logs.py) and returns; the retry bounds are the
callers' (Kubernetes deadlines, or the arguments).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("service.admin")


def wait_for_schema(check: Callable[[], str | None], interval: float) -> None:
    """Call `check` until it returns None (ready); it returns the reason otherwise."""
    while (reason := check()) is not None:
        log.info("waiting for the schema", extra={"reason": reason, "retry_in_s": interval})
        time.sleep(interval)


def wait_for_tcp(host: str, port: int, interval: float, timeout: float = 3.0) -> None:
    """Return once a TCP connection to host:port succeeds."""
    while True:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            log.info(
                "waiting for the database",
                extra={"host": host, "port": port, "error": str(exc), "retry_in_s": interval},
            )
            time.sleep(interval)
        else:
            log.info("database listening", extra={"host": host, "port": port})
            return


def copy_entries(source: Path, target: Path) -> int:
    """Copy the entries of `source` into the existing directory `target`, entry by entry:
    `shutil.copytree(source, target)` would end with copystat() on target itself, which fails
    with EPERM when target is a volume root owned by someone else (an emptyDir, kubelet's).
    Returns the number of entries copied."""
    count = 0
    for entry in os.scandir(source):
        destination = target / entry.name
        if entry.is_dir(follow_symlinks=False):
            shutil.copytree(entry.path, destination, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(entry.path, destination, follow_symlinks=False)
        count += 1
    return count


def smoke(
    base_url: str, deadline_s: float = 60.0, interval: float = 2.0, *, until_ready: bool = False
) -> str | None:
    """GET /readyz and /users under base_url: None when both answer 200 and /users has an
    items list, else the reason. A connection that cannot be made yet (a NetworkPolicy
    controller admits a new pod a moment after it starts) is retried until `deadline_s`; with
    `until_ready` an error status is retried too (skaffold's verify step runs while the
    release may still be rolling out), otherwise it fails at once (`helm test`)."""
    deadline = time.monotonic() + deadline_s
    body: object = None
    for path in ("/readyz", "/users"):
        while True:
            try:
                with urllib.request.urlopen(base_url + path, timeout=10) as response:  # noqa: S310
                    status, body = response.status, json.load(response)
                break
            except urllib.error.HTTPError as exc:
                if not until_ready or time.monotonic() > deadline:
                    return f"{path}: {exc.code} {exc.reason}"
                error = f"{exc.code} {exc.reason}"
            except OSError as exc:
                if time.monotonic() > deadline:
                    return f"{path}: {exc}"
                error = str(exc)
            log.info("not ready yet", extra={"path": path, "error": error})
            time.sleep(interval)
        extra: dict[str, object] = {"path": path, "status": status}
        if isinstance(body, dict) and path == "/readyz":
            extra["state"] = body.get("status")
        if isinstance(body, dict) and isinstance(body.get("items"), list):
            extra["items"] = len(body["items"])
        log.info("answered", extra=extra)
        if status != 200:
            return f"{path}: {status}"
    if not isinstance(body, dict) or "items" not in body:
        return "GET /users returned no items list"
    return None
