"""Chaos suite, the faults: worker processes, kill -9, broker restarts, rebalances, and how progress is seen."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from streamer.config import Settings

REPO = Path(__file__).resolve().parent.parent


# -- processes ---------------------------------------------------------------------------------------------------
def settings_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name, value in settings.model_dump().items():
        if value is not None and not isinstance(value, dict):
            env[f"VITALS_{name.upper()}"] = str(
                value.get_secret_value() if hasattr(value, "get_secret_value") else value
            )
    return env


STAGES = ("ingest", "pipeline", "acks")


class Worker:
    """``vitalstream worker`` as a child process (logging to a file), and the partitions its log says it holds."""

    def __init__(self, settings: Settings, log_path: Path, t0: float | None = None) -> None:
        self.log_path = log_path
        self.started = time.monotonic()
        self.t0 = self.started if t0 is None else t0  # the suite's start: assignment times count from it
        self.wall0 = time.time() - (self.started - self.t0)
        self.owned: dict[str, list[int]] = {}  # stage -> partitions restored and being processed now
        self.assignments: list[dict[str, Any]] = []  # every change, with seconds since the suite started
        self._read = 0
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamer.cli.main", "worker"],
                cwd=REPO,
                env=settings_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def scan(self) -> dict[str, list[int]]:
        """Read the log on from where we stopped (it grows by megabytes while the broker is away)."""
        with self.log_path.open("rb") as f:
            f.seek(self._read)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._read += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            for stage in STAGES:
                marker = f"{stage}: partitions ["
                if marker in line:
                    inside = line.split(marker, 1)[1].split("]", 1)[0]
                    self.owned[stage] = [int(p) for p in inside.split(",") if p.strip()]
                    at_s = _logged_at(line) - self.wall0
                    self.assignments.append({"at_s": round(at_s, 1), "stage": stage, "partitions": self.owned[stage]})
        return self.owned

    def ready(self, stage: str = "pipeline") -> bool:
        return stage in self.scan()

    def holds(self, partitions: list[int], stage: str = "pipeline") -> bool:
        return set(partitions) <= set(self.scan().get(stage, []))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout_s: float = 60.0) -> int:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill9()
        return int(self.proc.returncode)


# -- the broker as the suite sees it -----------------------------------------------------------------------------
@dataclass
class Progress:
    settings: Settings

    def end_offsets(self, topics: list[str], partitions: list[int] | None = None) -> int:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(**self.settings.kafka_client_kwargs())
        try:
            wanted = range(self.settings.partitions) if partitions is None else partitions
            return sum(consumer.end_offsets([TopicPartition(t, p) for t in topics for p in wanted]).values())
        finally:
            consumer.close()

    def outputs(self, partitions: list[int] | None = None, pipeline: bool = False) -> int:
        """Records the stages have published (on ``partitions``: outputs go to their input's partition); with
        ``pipeline`` only the last stage's (features, scores, alerts), not ingest's forwards."""
        t = self.settings.topics
        topics = [t.features, t.scores, t.alerts] + ([] if pipeline else [t.telemetry_valid])
        return self.end_offsets(topics, partitions)

    def with_traffic(self, partitions: list[int]) -> list[int]:
        """Those of ``partitions`` that telemetry has reached (a partition without devices never has output)."""
        return [p for p in partitions if self.end_offsets([self.settings.topics.telemetry], [p]) > 0]

    def lag(self) -> int:
        """Input not yet committed by the ingest and pipeline groups (they commit right after their markers)."""
        from kafka import KafkaConsumer, TopicPartition

        total = 0
        for stage, topic in (
            ("ingest", self.settings.topics.telemetry),
            ("pipeline", self.settings.topics.telemetry_valid),
        ):
            consumer = KafkaConsumer(
                group_id=f"{self.settings.app_id}-{stage}",
                enable_auto_commit=False,
                **self.settings.kafka_client_kwargs(),
            )
            try:
                tps = [TopicPartition(topic, p) for p in range(self.settings.partitions)]
                end = consumer.end_offsets(tps)
                total += sum(end[tp] - (consumer.committed(tp) or 0) for tp in tps)
            finally:
                consumer.close()
        return total


def _logged_at(line: str) -> float:
    """The wall clock of a worker log line ``[2026-12-02 05:52:05,259] ...`` (the worker's local time)."""
    return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def wait_for(pred: Any, timeout_s: float, every_s: float = 0.25) -> float | None:
    """Seconds until ``pred()`` held, or None after ``timeout_s``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        try:
            if pred():
                return time.monotonic() - start
        except Exception:  # the broker may be restarting: ask again
            pass
        time.sleep(every_s)
    return None


# -- the run -----------------------------------------------------------------------------------------------------
TAKEOVER_TIMEOUT_S = 120.0


@dataclass
class Chaos:
    settings: Settings
    log_dir: Path
    rng: random.Random
    broker: Any = None  # a devbroker.LocalKafka when the suite owns the broker
    workers: list[Worker] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    retired: list[Worker] = field(default_factory=list)  # every process that ran, for their assignments
    t0: float = field(default_factory=time.monotonic)
    feeder: Any = None  # the suite's gateway thread: held while the broker is away

    def start_worker(self) -> Worker:
        # A fresh log per process: readiness is read from it (a reused name would look ready at once).
        n = len(self.workers) + len(self.retired)
        w = Worker(self.settings, self.log_dir / f"worker-{len(self.events)}-{n}.log", self.t0)
        self.workers.append(w)
        return w

    def _replace(self, i: int) -> Worker:
        self.retired.append(self.workers[i])
        log_path = self.log_dir / f"worker-{len(self.events)}-r{len(self.retired)}.log"
        self.workers[i] = Worker(self.settings, log_path, self.t0)
        return self.workers[i]

    def pause(self, lo_s: float, hi_s: float) -> None:
        end = time.monotonic() + self.rng.uniform(lo_s, hi_s)
        while time.monotonic() < end:
            self._restart_dead()
            time.sleep(0.5)

    def _restart_dead(self) -> None:
        for i, w in enumerate(self.workers):
            if not w.alive() and w.proc.returncode not in (-9, 0):
                self.events.append(
                    {"fault": "worker exited by itself", "rc": w.proc.returncode, "log": w.log_path.name}
                )
                self._replace(i)

    def _first_output(self, since: float, ready: Any, partitions: list[int] | None = None) -> float | None:
        """Seconds from ``since`` to the first pipeline output (features, scores, alerts) on ``partitions`` after
        ``ready()`` held (the new owner has restored them: nothing of the old owner can still be on its way)."""
        progress = Progress(self.settings)
        if wait_for(ready, TAKEOVER_TIMEOUT_S, every_s=0.1) is None:
            return None
        before = progress.outputs(partitions, pipeline=True)
        if wait_for(lambda: progress.outputs(partitions, pipeline=True) > before, TAKEOVER_TIMEOUT_S, 0.1) is None:
            return None
        return round(time.monotonic() - since, 1)

    def kill_worker(self) -> None:
        """kill -9 of the only worker, and a new one started at once (as a supervisor would)."""
        progress = Progress(self.settings)
        backlog = progress.lag()
        self.workers[0].kill9()
        killed = time.monotonic()
        new = self._replace(0)
        first = self._first_output(killed, new.ready)
        self.events.append(
            {
                "fault": "worker kill -9, new process started",
                "at_s": round(killed - self.t0, 1),
                "backlog_before": backlog,
                "first_new_output_s": first,
            }
        )

    def restart_broker(self, hard: bool) -> None:
        from streamer.kafka.devbroker import _pid, down, up

        progress = Progress(self.settings)
        backlog = progress.lag()
        if self.feeder is not None:
            self.feeder.hold()
        started = time.monotonic()
        if hard:
            pid = _pid(self.broker)
            if pid:
                os.kill(pid, signal.SIGKILL)  # (the child stays a zombie of this process: _pid cannot tell)
        else:
            down(self.broker)
        time.sleep(self.rng.uniform(1, 4))
        up(self.broker)
        back = time.monotonic()
        if self.feeder is not None:
            self.feeder.go_on()
        before = progress.outputs()
        resumed = wait_for(lambda: progress.outputs() > before, TAKEOVER_TIMEOUT_S, every_s=0.25)
        self.events.append(
            {
                "fault": "broker kill -9" if hard else "broker graceful restart",
                "at_s": round(started - self.t0, 1),
                "backlog_before": backlog,
                "down_s": round(back - started, 1),
                "first_new_output_after_up_s": None if resumed is None else round(resumed, 1),
            }
        )

    def rebalance_cycle(self, hard_stop: bool) -> None:
        """A second worker joins, takes half the partitions, and goes (SIGTERM or kill -9): the first takes them back.
        The assignments of both, as their logs show them, are the evidence that partitions really moved."""
        first = self.workers[0]
        second = self.start_worker()
        started = time.monotonic()
        joined = wait_for(second.ready, 120)
        # The first worker gives up what the second took: both logs agree before the cycle goes on.
        split = wait_for(
            lambda: second.ready() and not set(first.scan().get("pipeline", [0])) & set(second.owned["pipeline"]), 120
        )
        theirs = sorted(second.owned.get("pipeline", []))
        during = {"first": sorted(first.owned.get("pipeline", [])), "second": theirs}
        self.pause(2, 6)
        backlog = Progress(self.settings).lag()
        stopped = time.monotonic()
        if hard_stop:
            second.kill9()
        else:
            second.proc.terminate()  # not waited for: Faust's own consumer takes 30-40 s to stop after the stages
        measured = Progress(self.settings).with_traffic(theirs)
        first_output = self._first_output(stopped, lambda: first.holds(theirs), measured) if measured else None
        second.stop()
        self.workers.remove(second)
        self.retired.append(second)
        self.events.append(
            {
                "fault": "rebalance 1->2->1"
                + (" (second worker kill -9)" if hard_stop else " (second worker SIGTERM)"),
                "at_s": round(started - self.t0, 1),
                "backlog_before": backlog,
                "second_joined_s": None if joined is None else round(joined, 1),
                "split_s": None if split is None else round(split, 1),
                "pipeline_partitions_while_two": during,
                "moved": bool(theirs) and split is not None and first.holds(theirs),
                "measured_on": measured,
                "first_new_output_on_them_s": first_output,
            }
        )

    def assignments(self) -> dict[str, list[dict[str, Any]]]:
        """Every worker process's assignment changes (seconds since the suite started)."""
        out = {}
        for w in self.retired + self.workers:
            w.scan()
            out[w.log_path.name] = w.assignments
        return out

    def drain(self, timeout_s: float) -> bool:
        progress = Progress(self.settings)

        quiet = {"outputs": -1, "since": time.monotonic()}

        def idle() -> bool:
            """Everything committed, or (a commit lost in a rebalance is never repeated) 45 s without output."""
            self._restart_dead()
            outputs = progress.outputs()
            if outputs != quiet["outputs"]:
                quiet.update(outputs=outputs, since=time.monotonic())
            return progress.lag() == 0 or time.monotonic() - quiet["since"] > 45

        done = wait_for(idle, timeout_s, every_s=2.0) is not None
        time.sleep(5)  # the tick's wall-clock closures of the last windows
        return done
