"""The one reader of BIDMC CSV files (``_Signals.csv[.gz]``, ``_Numerics.csv``, ``_Breaths.csv``): columns by name."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def read_csv_columns(path: Path) -> dict[str, np.ndarray]:
    """Every column of a BIDMC CSV as a float array keyed by its header name (``NaN`` text and empty cells as nan).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x_Numerics.csv"
    >>> _ = p.write_text("Time [s], HR\\n0, 72\\n1, NaN\\n")
    >>> {k: v.tolist() for k, v in read_csv_columns(p).items()}
    {'Time [s]': [0.0, 1.0], 'HR': [72.0, nan]}
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        names = [c.strip() for c in fh.readline().split(",")]
        data = np.atleast_2d(np.genfromtxt(fh, delimiter=",", dtype=float))
    if data.size == 0:
        data = np.empty((0, len(names)))
    return {name: data[:, i] for i, name in enumerate(names)}
