"""Log set-up for commands and the worker (text or JSON lines) and the aggregated dead-letter warnings.

Fields that recur across log lines use one spelling, passed with ``extra=``: ``device_id`` (pseudonymous),
``src`` (``topic[partition]@offset``), ``reason_code`` and ``count``. Payload values are never logged.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# python-json-logger adds every ``extra=`` field to the object; these are the ones every line has.
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_RENAMES = {"asctime": "ts", "levelname": "level", "name": "logger"}


def log_format() -> str:
    """``VITALS_LOG_FORMAT`` (``text`` or ``json``), read without building ``Settings`` so ``--help`` stays light."""
    fmt = os.environ.get("VITALS_LOG_FORMAT", "text").strip().lower() or "text"
    if fmt not in LOG_FORMATS:
        raise SystemExit(f"VITALS_LOG_FORMAT={fmt!r}: use one of {', '.join(LOG_FORMATS)}")
    return fmt


def dict_config(level: int | str, fmt: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: one stderr handler in the chosen format, used by CLI and worker."""
    if fmt == "json":
        formatter: dict[str, Any] = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": JSON_RENAMES,
        }
    else:
        formatter = {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
        },
        "root": {"level": level, "handlers": ["default"]},
    }


def configure(level: int | str, fmt: str) -> None:
    import logging.config

    logging.config.dictConfig(dict_config(level, fmt))


@dataclass
class _Tally:
    count: int = 0
    first_src: str = ""
    last_src: str = ""
    devices: set[str] = field(default_factory=set)


class DeadLetterLog:
    """Dead-letter warnings aggregated per reason: a gateway that sends garbage costs one line per interval.

    The first letter of a reason that was quiet during the previous interval is logged at once (so a single
    bad message is seen without delay); the rest are counted and ``flush`` writes one summary line per reason.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._tallies: dict[str, _Tally] = {}
        self._recent: set[str] = set()  # reasons seen in the previous interval
        self._since = time.monotonic()

    def add(self, reason_code: str, src: str, device_id: str | None, detail: str = "") -> None:
        """Count one dead letter; ``detail`` says what was wrong (never the payload's values)."""
        tally = self._tallies.get(reason_code)
        if tally is None and reason_code not in self._recent:
            self._tallies[reason_code] = _Tally()  # later letters of this interval are counted, not logged
            extra = {"reason_code": reason_code, "src": src, "device_id": device_id, "count": 1}
            self.logger.warning("dead-letter %s %s: %s", src, reason_code, detail[:200], extra=extra)
            return
        if tally is None:
            tally = self._tallies[reason_code] = _Tally()
        tally.count += 1
        tally.first_src = tally.first_src or src
        tally.last_src = src
        if device_id:
            tally.devices.add(device_id)

    def flush(self, now_s: float | None = None) -> None:
        """Write one summary line per reason counted since the last flush."""
        now_s = time.monotonic() if now_s is None else now_s
        elapsed_s = max(0.0, now_s - self._since)
        for reason_code, tally in sorted(self._tallies.items()):
            if tally.count:
                extra = {"reason_code": reason_code, "src": tally.last_src, "count": tally.count}
                self.logger.warning(
                    "dead-lettered %d more %s in %.0f s (%d devices; first %s, last %s)",
                    tally.count,
                    reason_code,
                    elapsed_s,
                    len(tally.devices),
                    tally.first_src,
                    tally.last_src,
                    extra=extra,
                )
        self._recent = set(self._tallies)
        self._tallies = {}
        self._since = now_s
