"""Shared fixtures: the real Kafka broker (started once per session), unique topics, worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamer.config import recordings_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = recordings_dir()


@pytest.fixture(scope="session", autouse=True)
def _compiled_kernels() -> None:
    """Compile (or load from numba's cache) the feature kernels once, before any test's timing starts: hypothesis
    deadlines would otherwise count the first call's compilation."""
    import numpy as np

    from streamer.features import kernels
    from streamer.signals.ppg_beats import PpgBeatDetector

    kernels.warm_up()
    PpgBeatDetector(125.0).update(np.zeros(250))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.fail(f"real data not found at {DATA_DIR} (set VITALS_RECORDINGS_DIR)")
    return DATA_DIR


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real broker: VITALS_KAFKA_BOOTSTRAP if set, else the project's local KRaft broker on 127.0.0.1."""
    existing = os.environ.get("VITALS_KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    from streamer.kafka.devbroker import LocalKafka, _pid, down, up

    port = int(os.environ.get("VITALS_TEST_KAFKA_PORT", "19092"))  # another port per clone running tests at once
    kafka = LocalKafka(name=f"test-{port}", port=port, controller_port=port + 1)
    was_running = _pid(kafka) is not None
    bootstrap = up(kafka)
    yield bootstrap
    if not was_running:
        down(kafka)


@pytest.fixture
def topic_prefix() -> str:
    """Unique per test, so tests never see each other's topics, groups or tables."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def settings_factory(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Callable[..., object]:
    from streamer.config import Settings

    def make(**overrides: object) -> Settings:
        base: dict[str, object] = dict(
            kafka_bootstrap=kafka_bootstrap,
            topic_prefix=topic_prefix,
            partitions=4,
            app_id=f"{topic_prefix}app",
            data_dir=tmp_path / "worker",
            web_port=0,  # no HTTP endpoints unless a test asks (clones share the machine: no fixed port)
        )
        base.update(overrides)
        return Settings(**base)

    return make


def settings_env(settings: object) -> dict[str, str]:
    """The VITALS_* environment that reproduces ``settings`` in a child process."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():  # type: ignore[attr-defined]
        if value is not None and not isinstance(value, dict):
            env[f"VITALS_{name.upper()}"] = str(
                value.get_secret_value() if hasattr(value, "get_secret_value") else value
            )
    return env


class WorkerProcess:
    """``vitalstream worker`` in a child process, logging to a file, stopped with SIGTERM like a real deploy."""

    def __init__(self, settings: object, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamer.cli.main", "worker"],
            cwd=REPO_ROOT,
            env=settings_env(settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            if "Worker]: Ready" in self.log_text():
                return
            time.sleep(0.3)
        raise TimeoutError(f"worker not ready in {timeout_s} s:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(settings: object, name: str = "worker") -> WorkerProcess:
        w = WorkerProcess(settings, tmp_path / f"{name}-{len(started)}.log")
        started.append(w)
        w.wait_ready()
        return w

    yield start
    for w in started:
        w.stop()
