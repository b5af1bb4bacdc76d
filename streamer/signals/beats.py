"""The shared API of the causal beat detectors (``ecg_beats``, ``ppg_beats``) and their offline runner.

Both detectors depend only on absolute sample indices and filter recurrences, so any chunking of the same
recording yields the same peaks; both serialise to JSON-able dicts. ``ecg_r_peaks`` and ``ppg_peaks`` run the
very same streaming path over 1-second chunks.
"""

from __future__ import annotations

import numpy as np


class _Detector:
    """Shared API: ``update``/``flush`` give peak indices; the ``*_timed`` forms also give, per peak, the
    sample count after which it was decided (windows use it to stay chunking-invariant)."""

    def _front(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The chunk through the detector's filters (their states carried); ``front_rows`` does many at once."""
        raise NotImplementedError

    def _advance(self, front: tuple[np.ndarray, np.ndarray]) -> list[tuple[int, int]]:
        """The per-sample decisions on the filtered chunk: (peak, decided at) of the peaks it settles."""
        raise NotImplementedError

    def _flush(self) -> list[tuple[int, int]]:
        return []

    def update_timed(
        self, x: np.ndarray, front: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``front``: this chunk's filter outputs when already computed for a whole batch (``front_rows``)."""
        return _as_arrays(self._advance(self._front(np.asarray(x, dtype=float)) if front is None else front))

    def flush_timed(self) -> tuple[np.ndarray, np.ndarray]:
        return _as_arrays(self._flush())

    def update(self, x: np.ndarray) -> np.ndarray:
        return self.update_timed(x)[0]

    def flush(self) -> np.ndarray:
        """End of stream: nothing later will arrive, so undecided candidates are judged as they are."""
        return self.flush_timed()[0]


def _as_arrays(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def _run_chunked(detector: _Detector, x: np.ndarray, fs_hz: float) -> np.ndarray:
    step = max(1, round(fs_hz))
    x = np.asarray(x, dtype=float)
    parts = [detector.update(x[i : i + step]) for i in range(0, len(x), step)]
    parts.append(detector.flush())
    peaks = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return peaks[(peaks >= 0) & (peaks < len(x))].astype(np.int64)
