"""Chaos suite, the verdict: every input accounted for, re-sent outputs identical, live equal to offline."""

from __future__ import annotations

import base64
import json
import math
import time
from collections import Counter, defaultdict
from typing import Any

from streamer.config import Settings
from streamer.sessions.format import SessionRecord


# -- what came out -----------------------------------------------------------------------------------------------
def collect(settings: Settings) -> dict[str, list[Any]]:
    """Every record of the output topics, from the beginning to their current end."""
    from kafka import KafkaConsumer, TopicPartition

    t = settings.topics
    names = {t.telemetry_valid: "valid", t.dlq: "dlq", t.features: "features", t.scores: "scores", t.alerts: "alerts"}
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **settings.kafka_client_kwargs())
    tps = [TopicPartition(n, p) for n in names for p in range(settings.partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    end = consumer.end_offsets(tps)
    got: dict[str, list[Any]] = {v: [] for v in names.values()}
    while any(consumer.position(tp) < end[tp] for tp in tps):
        for tp, records in consumer.poll(timeout_ms=1000).items():
            got[names[tp.topic]] += records
    consumer.close()
    return got


def account(inputs: list[tuple[bytes, bytes]], got: dict[str, list[Any]], settings: Settings) -> dict[str, Any]:
    """Every input forwarded (once per distinct device/seq), counted as a duplicate, or dead-lettered."""
    from streamer.ingest.validation import Accepted, validate

    want_valid: dict[tuple[str, int], bytes] = {}
    want_dlq: set[bytes] = set()
    copies = 0
    for _key, value in inputs:
        checked = validate(
            value,
            now_ms=int(time.time() * 1000),
            max_message_bytes=settings.max_message_bytes,
            future_margin_ms=settings.future_margin_ms,
        )
        if isinstance(checked, Accepted):
            ident = (checked.message.device_id, checked.message.seq)
            copies += ident in want_valid
            want_valid.setdefault(ident, value)
        else:
            want_dlq.add(value)
    forwarded: dict[tuple[str, int], set[bytes]] = defaultdict(set)
    times: Counter[tuple[str, int]] = Counter()
    for r in got["valid"]:
        msg = json.loads(r.value)
        forwarded[(msg["device_id"], msg["seq"])].add(r.value)
        times[(msg["device_id"], msg["seq"])] += 1

    lettered = {base64.b64decode(json.loads(r.value)["original_b64"]) for r in got["dlq"]}
    lost = [k for k in want_valid if k not in forwarded] + [
        v[:40].decode(errors="replace") for v in want_dlq - lettered
    ]
    return {
        "inputs": len(inputs),
        "valid_distinct": len(want_valid),
        "duplicates_injected": copies,
        "malformed": len(want_dlq),
        "lost": len(lost),
        "lost_examples": [str(x) for x in lost[:5]],
        "forwarded_again": sum(n - 1 for n in times.values() if n > 1),
        "forwarded_again_differing": sum(1 for v in forwarded.values() if len(v) > 1),
        "dead_lettered_distinct": len(lettered & want_dlq),
        "accounted": len(inputs) == len(forwarded) + copies + len(lettered & want_dlq) and not lost,
    }


def _by_key(records: list[Any], key: Any, strip: Any = None) -> tuple[dict[Any, Any], int]:
    """Latest parsed value per key, and how many keys were published with differing bytes."""
    seen: dict[Any, set[bytes]] = defaultdict(set)
    parsed: dict[Any, Any] = {}
    for r in records:
        obj = json.loads(r.value)
        k = key(obj)
        if strip:
            strip(obj)
        seen[k].add(json.dumps(obj, sort_keys=True).encode() if strip else r.value)
        parsed[k] = obj
    return parsed, sum(1 for v in seen.values() if len(v) > 1)


def _fkey(f: dict) -> tuple:
    return (f["device_id"], f["signal"], f["window_start_ms"], f["window_end_ms"])


def _skey(s: dict) -> tuple:
    return (s["device_id"], s["model"]["name"], s.get("source"), s["ts_ms"])


def _akey(a: dict) -> tuple:
    return (a["alert_id"], a["state"], a["transition_ts_ms"])


def _no_stamp(a: dict) -> None:
    a["latency"]["publish_ts_ms"] = None  # the one wall-clock field of an alert


def _last_ts(inputs: list[tuple[bytes, bytes]]) -> dict[str, int]:
    last_ms: dict[str, int] = {}
    for _key, value in inputs:
        try:
            msg = json.loads(value)
            last_ms[msg["device_id"]] = max(last_ms.get(msg["device_id"], 0), int(msg["ts_ms"]))
        except (ValueError, KeyError, TypeError):
            pass
    return last_ms


def _feature_error(want: dict[tuple, dict], live: dict[tuple, dict]) -> float:
    err = 0.0
    for k, f in want.items():
        for name, v in f["features"].items() if k in live else ():
            w = live[k]["features"].get(name)
            if v is None or w is None or (isinstance(v, float) and math.isnan(v)):
                both_missing = (v is None) == (w is None)
                err = err if both_missing or (w is not None and math.isnan(w)) else math.inf
            else:
                err = max(err, abs(v - w))
    return err


def _windows(want: dict, live: dict, differing: int, last_ms: dict[str, int], end: Any, grace_ms: int) -> dict:
    # A window ending within the grace before a device's last data can only be closed by a later message (offline:
    # never) or by the clock once the data has ended (live): closed after the data ended, like those ending later.
    extra = [k for k in live.keys() - want.keys() if end(k) <= last_ms.get(k[0], 0) - grace_ms]
    return {
        "offline": len(want),
        "live": len(live),
        "missing": len(want.keys() - live.keys()),
        "missing_examples": sorted(map(str, want.keys() - live.keys()))[:5],
        "extra_total": len(live.keys() - want.keys()),
        "extra_before_data_end": len(extra),
        "resent_differing": differing,
    }


def compare(inputs: list[tuple[bytes, bytes]], got: dict[str, list[Any]], settings: Settings) -> dict[str, Any]:
    """Live outputs against one uninterrupted offline run of the same inputs (wall-clock-only windows after a
    device's data ended are set aside, as in tests/kafka/test_pipeline_broker.py)."""
    from streamer.offline.analyze import analyze_records, default_inference

    records = [SessionRecord(settings.topics.telemetry, k, v, 0) for k, v in inputs]
    offline = analyze_records(records, settings, inference=default_inference(settings), flush=False).output
    last_ms = _last_ts(inputs)
    live_f, f_diff = _by_key(got["features"], _fkey)
    live_s, s_diff = _by_key(got["scores"], _skey)
    live_a, a_diff = _by_key(got["alerts"], _akey, _no_stamp)
    want_f = {_fkey(d): d for d in (f.model_dump(mode="json") for f in offline.features)}
    want_s = {_skey(d): d for d in (s.model_dump(mode="json") for s in offline.scores)}
    want_a = {_akey(d): d for d in (a.model_dump(mode="json") for a in offline.alerts)}
    features = _windows(want_f, live_f, f_diff, last_ms, lambda k: k[3], settings.late_grace_ms)
    features["max_abs_diff"] = _feature_error(want_f, live_f)
    scores = _windows(want_s, live_s, s_diff, last_ms, lambda k: k[3], settings.late_grace_ms)
    scores["max_abs_diff"] = max(
        (abs(want_s[k]["score"] - live_s[k]["score"]) for k in want_s if k in live_s), default=0.0
    )
    live_t = {k for k in live_a if k[2] <= last_ms.get(live_a[k]["device_id"], 0)}
    want_t = {k for k in want_a if k[2] <= last_ms.get(want_a[k]["device_id"], 0)}
    alerts = {
        "offline_transitions": len(want_t),
        "live_transitions": len(live_t),
        "identical": live_t == want_t,
        "missing": sorted(map(str, want_t - live_t))[:5],
        "extra": sorted(map(str, live_t - want_t))[:5],
        "resent_differing": a_diff,
    }
    return {"features": features, "scores": scores, "alerts": alerts}


TAKEOVER_LIMIT_S = 15.0  # issue 10: a killed worker's partitions are processed again within 15 s


def recovery(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Per fault kind, the seconds to the first new output; whether each rebalance really moved partitions."""
    kills = [e["first_new_output_s"] for e in events if e["fault"].startswith("worker kill")]
    cycles = [e for e in events if e["fault"].startswith("rebalance")]
    brokers = [e["first_new_output_after_up_s"] for e in events if e["fault"].startswith("broker")]
    timed = kills + [e["first_new_output_on_them_s"] for e in cycles]
    return {
        "worker_kill9_first_output_s": kills,
        "rebalance_takeover_s": [
            {"second_worker": "kill -9" if "kill -9" in e["fault"] else "SIGTERM", "s": e["first_new_output_on_them_s"]}
            for e in cycles
        ],
        "rebalances_moved": [e["moved"] for e in cycles],
        "broker_first_output_after_up_s": brokers,
        "workers_exited_by_themselves": sum(e["fault"] == "worker exited by itself" for e in events),
        "limit_s": TAKEOVER_LIMIT_S,
        "within_limit": all(t is not None and t <= TAKEOVER_LIMIT_S for t in timed)
        and all(e["moved"] for e in cycles)
        and all(t is not None for t in brokers),
    }


def verdict(result: dict[str, Any]) -> bool:
    a, c, r = result["accounting"], result["comparison"], result["recovery"]
    f, s, al = c["features"], c["scores"], c["alerts"]
    return bool(
        a["accounted"]
        and a["lost"] == 0
        and a["forwarded_again_differing"] == 0
        and f["missing"] == 0
        and f["extra_before_data_end"] == 0
        and f["max_abs_diff"] <= 1e-9
        and s["missing"] == 0
        and s["extra_before_data_end"] == 0
        and s["max_abs_diff"] <= 1e-6
        and al["identical"]
        and f["resent_differing"] == 0
        and s["resent_differing"] == 0
        and al["resent_differing"] == 0
        and r["within_limit"]
        and r["workers_exited_by_themselves"] == 0
    )
