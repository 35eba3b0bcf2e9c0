"""Processes seen from outside, through /proc: a server's process tree, a crash of all of it at
once, and the TCP sockets it listens on."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(p) for p in text]
    return out


def tree(pid: int) -> list[int]:
    """pid and every process below it (gunicorn: the master and its workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            todo += _children(current)
        except FileNotFoundError:
            continue
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL the master and its workers at once: a crash, with no chance to clean up."""
    for each in tree(pid):
        try:
            os.kill(each, signal.SIGKILL)
        except ProcessLookupError:
            continue


def listening_ports(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket the processes hold, from /proc."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # TCP_LISTEN
                address, port = local.split(":")
                found.add(("0.0.0.0" if address == "0" * width else address, int(port, 16)))  # noqa: S104
    return found
