"""A deadline per row (run.row_deadline_s), so one pathological row cannot hold a worker forever.

The runner measures each row inside `row_time`; decoding checks the deadline between packets
and the model backends between their windows and chunks (`check`), so a row past it stops with a
`RowTimeout` and becomes an error row while the worker goes on. One model call already running
(one network forward) finishes first, except in a child process (Spleeter's), which is killed.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

# this process's row: set by row_time around each row (one measuring thread per worker process)
_ROW: dict = {"deadline_s": None, "started": None}


class RowTimeout(TimeoutError):
    """The row ran past run.row_deadline_s."""


@contextmanager
def row_time(deadline_s: float | None) -> Iterator[None]:
    """The row's measurement runs inside: `check` raises once `deadline_s` have passed since it began (None:
    never), and nowhere after it (other work of the process, e.g. the driver's thumbnails, is never stopped
    by a row that ended)."""
    _ROW["deadline_s"], _ROW["started"] = deadline_s, time.monotonic()
    try:
        yield
    finally:
        _ROW["deadline_s"] = None


def remaining() -> float | None:
    """Seconds left to the current row (None: no deadline)."""
    if _ROW["deadline_s"] is None:
        return None
    return _ROW["deadline_s"] - (time.monotonic() - _ROW["started"])


def check(doing: str, error: type[RowTimeout] = RowTimeout) -> None:
    """Raise `error` when the current row is past its deadline; `doing` says where ("while separating")."""
    left = remaining()
    if left is not None and left < 0:
        raise error(f"the row ran past its deadline of {_ROW['deadline_s']:g} s {doing} (run.row_deadline_s)")
