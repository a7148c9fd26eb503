"""Run a sweep's independent training runs in parallel processes, one torch thread each.

Shared by the scripts of this directory. Every run is seeded and runs on one thread, so the
result of a run does not depend on how many workers there are or in which order runs finish."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from multiprocessing import get_context
from pathlib import Path
from typing import Any


def _one(arg: tuple[Callable[[Any], dict], Any]) -> dict:
    import torch

    fn, job = arg
    torch.set_num_threads(1)
    return fn(job)


def parallel_runs(fn: Callable[[Any], dict], jobs: Sequence[Any], workers: int) -> Iterator[dict]:
    """``fn(job)`` for every job, in ``workers`` spawned processes; yields the results in the
    order of ``jobs``. ``fn`` must be a module-level function (it is pickled by reference)."""
    if workers <= 1:
        yield from (_one((fn, j)) for j in jobs)
        return
    with get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_one, [(fn, j) for j in jobs])


def sig(x: float | None, digits: int = 4) -> float | None:
    """``x`` rounded to ``digits`` significant digits for compact storage (None if not finite)."""
    return None if x is None or not math.isfinite(x) else float(f"{x:.{digits}g}")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as compact JSON through a temporary file and a rename, so that an
    interruption leaves the previous file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    os.replace(tmp, path)
