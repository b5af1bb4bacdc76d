"""Log set-up (text and JSON lines) and the aggregated dead-letter warnings."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from streamer.logs import DeadLetterLog, dict_config

pytestmark = pytest.mark.unit


def _letters(dlq: DeadLetterLog, reason: str, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        dlq.add(reason, f"vitals.telemetry[{i % 4}]@{i}", f"dev-{i % 7}", "detail")


def test_a_flood_of_dead_letters_gives_one_line_per_reason_per_interval(caplog) -> None:
    dlq = DeadLetterLog(logging.getLogger("test.dlq"), interval_s=10)
    with caplog.at_level(logging.WARNING, logger="test.dlq"):
        _letters(dlq, "MALFORMED_JSON", 1000)
        _letters(dlq, "IMPOSSIBLE_VALUE", 50)
        assert len(caplog.records) == 2  # the first letter of each reason, at once
        dlq.flush(now_s=dlq._since + 10)
        assert len(caplog.records) == 4  # then one summary per reason
        summaries = {r.reason_code: r for r in caplog.records[2:]}
        assert summaries["MALFORMED_JSON"].count == 999 and summaries["IMPOSSIBLE_VALUE"].count == 49
        assert "7 devices" in summaries["MALFORMED_JSON"].getMessage()
        # Still flooding in the next interval: no line at once, one summary at the flush.
        _letters(dlq, "MALFORMED_JSON", 300, start=1000)
        assert len(caplog.records) == 4
        dlq.flush()
        assert [r.count for r in caplog.records[4:]] == [300]
        assert caplog.records[4].src == "vitals.telemetry[3]@1299"


def test_a_reason_quiet_for_an_interval_is_logged_at_once_again(caplog) -> None:
    dlq = DeadLetterLog(logging.getLogger("test.dlq2"))
    with caplog.at_level(logging.WARNING, logger="test.dlq2"):
        _letters(dlq, "STALE_SEQ", 1)
        dlq.flush()  # nothing more to say about STALE_SEQ
        dlq.flush()  # a quiet interval
        _letters(dlq, "STALE_SEQ", 1)
    assert [r.count for r in caplog.records] == [1, 1]
    assert all(r.getMessage().startswith("dead-letter vitals.telemetry") for r in caplog.records)


def test_json_format_writes_one_object_per_line_with_the_shared_fields() -> None:
    code = (
        "import logging, logging.config, sys\n"
        "from streamer.logs import dict_config\n"
        "logging.config.dictConfig(dict_config('INFO', 'json'))\n"
        "logging.getLogger('streamer.x').warning('dead-letter %s', 'src', "
        "extra={'device_id': 'dev-1', 'src': 't[0]@5', 'reason_code': 'MALFORMED_JSON'})\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    line = json.loads(done.stderr.strip())
    assert line["level"] == "WARNING" and line["logger"] == "streamer.x" and line["message"] == "dead-letter src"
    assert (line["device_id"], line["src"], line["reason_code"]) == ("dev-1", "t[0]@5", "MALFORMED_JSON")
    assert "ts" in line


def test_the_cli_refuses_an_unknown_log_format() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamer.cli.main", "schemas", "/nonexistent/never"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"VITALS_LOG_FORMAT": "xml", "PATH": ""},
    )
    assert done.returncode != 0 and "VITALS_LOG_FORMAT='xml'" in done.stderr


def test_text_format_is_the_default_line() -> None:
    assert dict_config("INFO", "text")["formatters"]["default"] == {
        "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"
    }
