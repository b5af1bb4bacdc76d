"""Stage 2 for a whole batch: the chunks of many devices filtered as 2-D arrays, one scipy call per filter.

After every message of a batch is admitted (``DeviceSignalProcessor.admit``: order, duplicates and gaps, per
device), :func:`prefilter` takes the in-order chunks of every channel, groups the k-th chunk of each channel by
(signal, sample rate, chunk length) and runs the channel filter and the beat detector's filters once per group
over a (devices, samples) array, each row with its own device's filter state. The outputs wait in
``Channel.ready`` until the channel ingests that chunk, in message order; the per-sample decisions, windows and
features stay per device. Each row comes out bit for bit as the per-device call gives it (``sosfilt``/``lfilter``
compute rows independently, and chunks are never merged: an FIR over a merged chunk rounds differently).

A channel's chunks after a segment reset in the same batch are left to the per-device path: the reset gives
them fresh filters that do not exist yet when the batch is prefiltered.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from streamer.signals import ecg_beats, ppg_beats
from streamer.signals.channels import Channel
from streamer.signals.device import Admitted
from streamer.signals.filters import CausalFilter
from streamer.signals.windows import Reset, Samples

GroupKey = tuple[str, float, int]  # (signal, fs_hz, chunk length)


def prefilter(admitted: Iterable[Admitted]) -> int:
    """Filter ahead every chunk of ``admitted`` that can be; returns how many chunks were."""
    queues = _chunks_by_channel(admitted)
    done = 0
    for k in range(max((len(q) for q in queues.values()), default=0)):
        groups: dict[GroupKey, list[tuple[Channel, Samples]]] = defaultdict(list)
        for channel, chunks in queues.items():
            if k < len(chunks):
                groups[(channel.signal, channel.fs_hz, len(chunks[k].values))].append((channel, chunks[k]))
        for members in groups.values():
            _filter_group(members)
            done += len(members)
    return done


def _chunks_by_channel(admitted: Iterable[Admitted]) -> dict[Channel, list[Samples]]:
    """Each channel's chunks in ingest order, up to its first reset in the batch."""
    queues: dict[Channel, list[Samples]] = {}
    after_reset: set[Channel] = set()
    for adm in admitted:
        queue = queues.setdefault(adm.channel, [])
        for ev in adm.events:
            if isinstance(ev, Reset):
                after_reset.add(adm.channel)
            elif adm.channel not in after_reset:
                queue.append(ev)
    return queues


def _filter_group(members: list[tuple[Channel, Samples]]) -> None:
    channels = [ch for ch, _ in members]
    x = np.stack([chunk.values for _, chunk in members])  # (D, L)
    first = channels[0]
    filtered = x if first.filter is None else CausalFilter.process_rows([ch.filter for ch in channels], x)  # type: ignore[misc]
    fronts: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(members)
    if isinstance(first.detector, ppg_beats.PpgBeatDetector):
        a, b = ppg_beats.front_rows([ch.detector for ch in channels], x)  # type: ignore[misc]
        fronts = list(zip(a, b, strict=True))
    elif isinstance(first.detector, ecg_beats.EcgBeatDetector):
        a, b = ecg_beats.front_rows([ch.detector for ch in channels], x)  # type: ignore[misc]
        fronts = list(zip(a, b, strict=True))
    for (ch, chunk), row, front in zip(members, filtered, fronts, strict=True):
        ch.ready.append((chunk, row, front))
