"""The one poll loop of the suite."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_until(
    what: str,
    check: Callable[[], object],
    timeout: float,
    interval: float = 1.0,
    *,
    errors: tuple[type[BaseException], ...] = (Exception,),
    context: Callable[[], str] | None = None,
):
    """Call check() until it returns something truthy and return that; an exception in `errors`
    counts as not yet (anything else, e.g. a failed assertion inside check, ends the wait). After
    `timeout` seconds fail naming `what`, the last such error and, if given, context() (a log)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = check()
        except errors as exc:
            result, last = None, exc
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(interval, remaining))
    message = f"timed out after {timeout:g}s waiting for {what} (last error: {last!r})"
    pytest.fail(message + (f"\n{context()}" if context else ""))
