"""Chaos suite, the faults: worker processes, kill -9, broker restarts, rebalances, and how progress is seen."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
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


class Worker:
    """``vitalstream worker`` as a child process (logging to a file)."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.log_path = log_path
        self.started = time.monotonic()
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

    def ready(self, stage: str = "pipeline") -> bool:
        return f"{stage}: partitions" in self.text()

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

    def outputs(self, partitions: list[int] | None = None) -> int:
        """Records the stages have published (on ``partitions``: outputs go to their input's partition)."""
        t = self.settings.topics
        return self.end_offsets([t.features, t.scores, t.alerts, t.telemetry_valid], partitions)

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


def owned(worker: Worker, stage: str) -> list[int]:
    """The partitions of ``stage`` that the worker's log says it holds now."""
    lines = [ln for ln in worker.text().splitlines() if f"{stage}: partitions [" in ln]
    if not lines:
        return []
    inside = lines[-1].split(f"{stage}: partitions [", 1)[1].split("]", 1)[0]
    return [int(p) for p in inside.split(",") if p.strip()]


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
@dataclass
class Chaos:
    settings: Settings
    log_dir: Path
    rng: random.Random
    broker: Any = None  # a devbroker.LocalKafka when the suite owns the broker
    workers: list[Worker] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def start_worker(self) -> Worker:
        # A fresh log per process: readiness is read from it (a reused name would look ready at once).
        w = Worker(self.settings, self.log_dir / f"worker-s{len(self.events)}-{len(self.workers)}.log")
        self.workers.append(w)
        return w

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
                self.workers[i] = Worker(self.settings, self.log_dir / f"worker-r{len(self.events)}.log")

    def kill_worker(self) -> None:
        """kill -9 of the only worker, and a new one started at once (as a supervisor would)."""
        progress = Progress(self.settings)
        before = progress.outputs()
        self.workers[0].kill9()
        killed = time.monotonic()
        self.workers[0] = Worker(self.settings, self.log_dir / f"worker-k{len(self.events)}.log")
        first = wait_for(lambda: progress.outputs() > before, 180)
        self.events.append(
            {
                "fault": "worker kill -9, new process started",
                "first_new_output_s": None if first is None else round(time.monotonic() - killed, 1),
                "pending_before_kill": progress.lag(),
            }
        )

    def restart_broker(self, hard: bool) -> None:
        from streamer.kafka.devbroker import _pid, down, up

        started = time.monotonic()
        if hard:
            pid = _pid(self.broker)
            if pid:
                os.kill(pid, signal.SIGKILL)  # (the child stays a zombie of this process: _pid cannot tell)
        else:
            down(self.broker)
        time.sleep(self.rng.uniform(1, 4))
        up(self.broker)
        self.events.append(
            {
                "fault": "broker kill -9" if hard else "broker graceful restart",
                "down_s": round(time.monotonic() - started, 1),
            }
        )

    def rebalance_cycle(self, hard_stop: bool) -> None:
        second = self.start_worker()
        joined = wait_for(second.ready, 120)
        self.pause(2, 6)
        progress = Progress(self.settings)
        theirs = owned(second, "pipeline") or owned(second, "ingest")
        before = progress.outputs(theirs)
        stopped = time.monotonic()
        if hard_stop:
            second.kill9()
        else:
            second.stop()
        # The takeover: new output on the partitions the second worker held, from the first worker.
        first = wait_for(lambda: progress.outputs(theirs) > before, 120) if theirs else None
        self.workers.remove(second)
        self.events.append(
            {
                "fault": "rebalance 1->2->1"
                + (" (second worker kill -9)" if hard_stop else " (second worker SIGTERM)"),
                "second_joined_s": None if joined is None else round(joined, 1),
                "partitions_taken_over": theirs,
                "first_new_output_on_them_s": None if first is None else round(time.monotonic() - stopped, 1),
            }
        )

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
