"""CPU time and memory of processes, read from /proc (Linux only, read-only).

CPU per request is the benchmark's steadiest number: on a shared 2-core machine requests/s
swings with whatever else runs, the CPU a server spends per request barely does.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import resource

_TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """pid and every process below it (gunicorn and uvicorn workers, their helpers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in pathlib.Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the given processes (those alive now)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def database_pids() -> list[int]:
    """Every MariaDB/MySQL server process on this machine."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in {"mariadbd", "mysqld"}:
                    found.append(int(entry.name))
    return found


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children (each wrk run is one)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def host_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    values = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _TICKS


def memory_kib(pids: list[int]) -> dict[str, int]:
    """Summed RSS and PSS (PSS counts pages shared after fork once)."""
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(OSError, AttributeError):
            status = pathlib.Path(f"/proc/{pid}/status").read_text()
            rss += int(re.search(r"^VmRSS:\s+(\d+)", status, re.MULTILINE).group(1))
        with contextlib.suppress(OSError, AttributeError):
            rollup = pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text()
            pss += int(re.search(r"^Pss:\s+(\d+)", rollup, re.MULTILINE).group(1))
    return {"rss_kib": rss, "pss_kib": pss, "processes": len(pids)}
