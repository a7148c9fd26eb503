"""Sinks for the training history: a CSV file (always) and TensorBoard event files (when the
optional ``tensorboard`` package is installed: ``pip install pgcore[tensorboard]``).

``pgcore.train(..., log_dir=d)`` writes ``d/progress.csv`` row by row (flushed after each
iteration, so a crashed or interrupted run keeps what it did) and, with TensorBoard
available, event files in ``d`` with every numeric entry under ``train/<key>`` and the mean
of the episodes finished in the iteration under ``rollout/ep_return_mean``. List-valued
entries (``episode_returns``, ``episode_lengths``, ``episode_end_steps``) are written to the
CSV as JSON lists; None becomes an empty cell. :func:`read_csv` reads the file back into
history rows.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["CSVLogger", "TensorBoardLogger", "open_loggers", "read_csv"]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    if isinstance(value, float):
        return repr(value)
    return str(value)


class CSVLogger:
    """Append history rows to ``path`` as CSV; one flush per row.

    The columns are the keys of the rows seen so far. A row with a key not seen before
    rewrites the file with the wider header (rare: the key set of a run is fixed after its
    first iteration)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = []
        self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer: csv.writer | None = None

    def _rewrite(self) -> None:
        self._file.seek(0)
        self._file.truncate()
        self._writer = csv.writer(self._file)
        self._writer.writerow(self.columns)
        for row in self.rows:
            self._writer.writerow([_cell(row.get(c)) for c in self.columns])

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(dict(row))
        new = [k for k in row if k not in self.columns]
        if new or self._writer is None:
            self.columns += new
            self._rewrite()
        else:
            self._writer.writerow([_cell(row.get(c)) for c in self.columns])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _parse_cell(text: str) -> Any:
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    if text.startswith("["):
        return json.loads(text)
    try:
        return int(text)
    except ValueError:
        return float(text)


def read_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``progress.csv`` written by :class:`CSVLogger` (numbers, booleans, lists
    and None restored)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(f)]


class TensorBoardLogger:
    """Every numeric entry of a row as a TensorBoard scalar ``train/<key>`` at step
    ``env_steps``, plus ``rollout/ep_return_mean``. Needs the ``tensorboard`` package."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def write(self, row: dict[str, Any]) -> None:
        step = int(row.get("env_steps") or 0)
        for key, value in row.items():
            if isinstance(value, (bool, int, float)) and key not in ("env_steps", "iteration"):
                self.writer.add_scalar(f"train/{key}", float(value), step)
        returns = row.get("episode_returns") or []
        if returns:
            self.writer.add_scalar(
                "rollout/ep_return_mean", math.fsum(returns) / len(returns), step
            )
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def tensorboard_available() -> bool:
    """Whether ``tensorboard`` is importable."""
    return importlib.util.find_spec("tensorboard") is not None


def open_loggers(log_dir: str | os.PathLike) -> list[CSVLogger | TensorBoardLogger]:
    """A :class:`CSVLogger` on ``log_dir/progress.csv`` and, if available, a
    :class:`TensorBoardLogger` on ``log_dir`` (the directory is created)."""
    d = Path(log_dir)
    d.mkdir(parents=True, exist_ok=True)
    out: list[CSVLogger | TensorBoardLogger] = [CSVLogger(d / "progress.csv")]
    if tensorboard_available():
        out.append(TensorBoardLogger(d))
    return out
