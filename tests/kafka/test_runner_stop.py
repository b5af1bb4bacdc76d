"""The runner under stops and failures: a stop (SIGTERM, a rebalance away) never cuts a batch or timer half-way,
a failed job lets nothing write the states it moved on, a hanging offset commit never holds the batch loop, and a
broker just back is sent to again (a batch cut half-way, then checkpointed, lost a feature window in the chaos
tests)."""

from __future__ import annotations

import asyncio

import pytest

from streamer.kafka.runner import ConsumerTimings, Effects, PartitionedRunner
from streamer.kafka.store import PartitionState

pytestmark = pytest.mark.unit


class _Stage:
    name, topics = "t", ["t.in"]

    def __init__(self) -> None:
        self.checkpoints = 0

    def assigned(self, states: dict[int, PartitionState]) -> None: ...
    def revoked(self, partitions: list[int]) -> None: ...

    async def handle(self, state: PartitionState, records: list[object]) -> Effects:
        return Effects()

    def replay_from(self, partition: int) -> dict[str, int]:
        return {}

    async def checkpoint(self, state: PartitionState, *, everything: bool) -> Effects:
        self.checkpoints += 1
        return Effects()


def _runner(stage: _Stage, patience_s: float = 5.0) -> PartitionedRunner:
    timings = ConsumerTimings(stop_patience_s=patience_s)
    runner = PartitionedRunner(stage, group_id="g", changelog="c", producer=None, client_kwargs={}, timings=timings)  # type: ignore[arg-type]
    runner.states = {0: PartitionState(0)}
    return runner


def test_a_cancelled_caller_does_not_cut_the_job_and_the_stop_waits_for_it() -> None:
    async def scenario() -> list[str]:
        runner, steps, go_on = _runner(_Stage()), [], asyncio.Event()

        async def job() -> None:
            steps.append("live states moved")
            await go_on.wait()  # the outputs being published
            steps.append("outputs published")

        caller = asyncio.ensure_future(runner.exclusive(job))
        await asyncio.sleep(0.01)
        caller.cancel()  # the SIGTERM
        with pytest.raises(asyncio.CancelledError):
            await caller
        settle = asyncio.ensure_future(runner._settle())
        await asyncio.sleep(0.01)
        assert not settle.done(), "the stop must wait for the job in hand"
        go_on.set()
        assert await settle
        assert not runner.broken and not runner.lock.locked()
        return steps

    assert asyncio.run(scenario()) == ["live states moved", "outputs published"]


def test_a_job_that_failed_half_way_leaves_no_states_to_write() -> None:
    async def scenario() -> int:
        stage = _Stage()
        runner = _runner(stage)

        async def job() -> None:
            raise RuntimeError("the broker went away mid-publish")

        with pytest.raises(RuntimeError):
            await runner.exclusive(job)
        assert runner.broken
        await runner.checkpoint_all()
        return stage.checkpoints

    assert asyncio.run(scenario()) == 0


def test_a_job_that_outlasts_the_stop_patience_is_cut_and_nothing_is_written() -> None:
    async def scenario() -> tuple[bool, bool]:
        runner = _runner(_Stage(), patience_s=0.05)
        forever = asyncio.Event()

        async def job() -> None:
            await forever.wait()

        caller = asyncio.ensure_future(runner.exclusive(job))
        await asyncio.sleep(0.01)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        finished = await runner._settle()
        await asyncio.sleep(0.01)
        return finished, runner.broken

    assert asyncio.run(scenario()) == (False, True)


def test_an_offset_commit_that_hangs_is_given_up_and_never_holds_the_batch_loop() -> None:
    """aiokafka retries a commit while the group coordinator loads (after a broker restart): for tens of seconds
    the pipeline published nothing while the commit timer held the lock."""

    async def scenario() -> tuple[float, bool]:
        runner = _runner(_Stage())
        runner.timings = ConsumerTimings(commit_timeout_s=0.1)
        coordinator_back = asyncio.Event()

        async def commit(offsets: object) -> None:
            await coordinator_back.wait()

        runner.consumer.commit = commit  # type: ignore[method-assign]
        runner.uncommitted = {object(): 5}  # type: ignore[dict-item]
        timer = asyncio.ensure_future(runner.every(0.01, runner.commit_offsets, locked=False))
        await asyncio.sleep(0.05)  # the commit is hanging now
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(runner.exclusive(_noop), 1.0)  # a batch gets the lock meanwhile
        took = asyncio.get_running_loop().time() - started
        runner.uncommitted = {object(): 6}  # type: ignore[dict-item]
        await asyncio.sleep(0.3)
        timer.cancel()
        return took, not runner.uncommitted  # the hung commit was given up: the next one took the new offsets

    took, retried = asyncio.run(scenario())
    assert took < 0.05 and retried


async def _noop() -> None:
    return None


def test_publish_sends_again_when_a_broker_just_back_has_no_leader_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """LeaderNotAvailable right after a broker restart crashed the worker in the chaos suite; a non-retriable
    error still stops it."""
    from aiokafka.errors import LeaderNotAvailableError, RecordTooLargeError

    from streamer.kafka import runner as runner_mod

    def sends(errors: list[Exception]) -> list[int]:
        calls: list[int] = []

        async def send_all(producer: object, outgoing: list[object]) -> list[asyncio.Future[None]]:
            calls.append(len(outgoing))
            if errors:
                raise errors.pop(0)
            return []

        monkeypatch.setattr(runner_mod, "send_all", send_all)
        monkeypatch.setattr(runner_mod.asyncio, "sleep", _noop_sleep)
        asyncio.run(runner_mod.publish(None, [object(), object()]))  # type: ignore[arg-type, list-item]
        return calls

    assert sends([LeaderNotAvailableError(), LeaderNotAvailableError()]) == [2, 2, 2]  # all records, each time
    with pytest.raises(RecordTooLargeError):
        sends([RecordTooLargeError()])


async def _noop_sleep(_s: float) -> None:
    return None


def test_after_a_failed_job_no_queued_job_runs() -> None:
    """A state checkpoint waiting for the lock behind a batch whose publish failed must not write the states that
    batch moved on (the worker is going down; the next owner replays from the marker)."""

    async def scenario() -> list[str]:
        runner, ran = _runner(_Stage()), []
        release = asyncio.Event()

        async def failing_batch() -> None:
            await release.wait()
            raise RuntimeError("LeaderNotAvailable for 300 s")

        async def checkpoint() -> None:
            ran.append("checkpoint")

        batch = asyncio.ensure_future(runner.exclusive(failing_batch))
        await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(runner.exclusive(checkpoint))
        await asyncio.sleep(0.01)
        release.set()
        with pytest.raises(RuntimeError):
            await batch
        await queued
        return ran

    assert asyncio.run(scenario()) == []


class _TwoPartitionStage(_Stage):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def handle(self, state: PartitionState, records: list[object]) -> Effects:
        self.log.append(f"handle {state.partition}")
        from streamer.kafka.runner import Outgoing

        return Effects([Outgoing("out", b"k", b"v", state.partition)], {b"dev": b"state"})


@pytest.fixture
def acks_by_hand(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], dict[str, asyncio.Future[None]]]:
    """``send_all`` that logs each publish and returns a future the test resolves (the broker's ack)."""
    from streamer.kafka import runner as runner_mod

    log: list[str] = []
    acks: dict[str, asyncio.Future[None]] = {}

    async def send_all(producer: object, outgoing: list[object]) -> list[asyncio.Future[None]]:
        name = f"{outgoing[0].topic}[{outgoing[0].partition}]"  # type: ignore[attr-defined]
        log.append(f"send {name}")
        acks[name] = asyncio.get_running_loop().create_future()
        return [acks[name]]

    monkeypatch.setattr(runner_mod, "send_all", send_all)
    return log, acks


async def _two_partition_batch(log: list[str]) -> tuple[PartitionedRunner, asyncio.Future[None]]:
    """A batch of one record on each of partitions 0 and 1, started as a job; its first steps taken."""
    from aiokafka import TopicPartition
    from aiokafka.structs import ConsumerRecord

    runner = _runner(_TwoPartitionStage(log))
    runner.states = {0: PartitionState(0), 1: PartitionState(1)}
    batches = {
        TopicPartition("t.in", p): [ConsumerRecord("t.in", p, 7, 0, 0, b"k", b"v", None, 0, 1, [])] for p in (0, 1)
    }
    job = asyncio.ensure_future(runner.exclusive(lambda: runner._process(batches)))
    await asyncio.sleep(0.01)
    return runner, job


def test_partitions_are_computed_while_earlier_ones_publish_and_each_keeps_outputs_before_states(
    acks_by_hand: tuple[list[str], dict[str, asyncio.Future[None]]],
) -> None:
    """Awaited one after the other, 8 partitions' broker round trips capped a runner's batches per second."""
    log, acks = acks_by_hand

    async def scenario() -> PartitionedRunner:
        runner, job = await _two_partition_batch(log)
        # no ack yet, and partition 1 is computed and being published: it did not wait for partition 0's round trip
        assert sorted(log) == ["handle 0", "handle 1", "send out[0]", "send out[1]"]
        assert not job.done()
        acks["out[1]"].set_result(None)
        await asyncio.sleep(0.01)
        assert log[-1] == "send c[1]"  # partition 1's states only after its outputs are acknowledged
        acks["c[1]"].set_result(None)
        await asyncio.sleep(0.01)
        assert runner.states[1].values == {b"dev": b"state"} and runner.states[0].values == {}
        acks["out[0]"].set_result(None)
        await asyncio.sleep(0.01)
        acks["c[0]"].set_result(None)
        await asyncio.wait_for(job, 1.0)
        return runner

    runner = asyncio.run(scenario())
    assert runner.states[0].values == {b"dev": b"state"} and runner.states[0].offsets == {"t.in": 7}
    assert not runner.broken


def test_a_failed_publish_fails_the_batch_and_leaves_its_partition_state_unwritten(
    acks_by_hand: tuple[list[str], dict[str, asyncio.Future[None]]],
) -> None:
    from aiokafka.errors import RecordTooLargeError

    log, acks = acks_by_hand

    async def scenario() -> PartitionedRunner:
        runner, job = await _two_partition_batch(log)
        acks["out[0]"].set_exception(RecordTooLargeError())
        acks["out[1]"].set_result(None)
        await asyncio.sleep(0.01)
        acks["c[1]"].set_result(None)
        with pytest.raises(RecordTooLargeError):
            await asyncio.wait_for(job, 1.0)
        return runner

    runner = asyncio.run(scenario())
    assert runner.broken
    assert runner.states[0].values == {} and runner.states[0].offsets == {}  # never made durable: replayed
    assert "send c[0]" not in log


def test_a_stopping_runner_answers_drained_at_once_and_a_hanging_query_is_given_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pipeline's tick asks the ingest runner whether a partition is drained. Asked just as ingest stopped, a
    closed consumer's end-offsets query waited forever for metadata, under the pipeline's lock: the stop patience
    ran out, no state was written and the next owner published the first half of a recording again (CI)."""
    asked: list[int] = []

    async def never(partitions: list[object]) -> dict[object, int]:
        asked.append(len(partitions))
        await asyncio.Event().wait()  # what aiokafka does for a stopped consumer: waits for metadata
        return {}

    async def scenario() -> tuple[bool, bool, float]:
        runner = PartitionedRunner(
            _Stage(),
            group_id="g",
            changelog="c",
            producer=None,  # type: ignore[arg-type]
            client_kwargs={},
            timings=ConsumerTimings(offsets_timeout_s=0.2),
        )
        runner.states = {0: PartitionState(0)}
        monkeypatch.setattr(runner.consumer, "end_offsets", never)
        started = asyncio.get_running_loop().time()
        hanging = await asyncio.wait_for(runner.drained(0), 5.0)
        waited = asyncio.get_running_loop().time() - started
        runner.stopping = True
        return hanging, await asyncio.wait_for(runner.drained(0), 0.05), waited

    hanging, stopping, waited = asyncio.run(scenario())
    assert hanging is False and 0.2 <= waited < 2.0  # given up after offsets_timeout_s: "cannot tell"
    assert stopping is False and asked == [1]  # the stopping runner did not ask its consumer at all


def test_a_late_job_is_logged_with_where_it_waits(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> bool:
        runner = _runner(_Stage(), patience_s=0.05)

        async def ask_the_broker() -> None:
            await asyncio.Event().wait()

        async def job() -> None:
            await ask_the_broker()

        caller = asyncio.ensure_future(runner.exclusive(job))
        await asyncio.sleep(0.01)
        settled = await runner._settle()
        assert not caller.done() or caller.cancelled()
        return settled

    with caplog.at_level("WARNING", logger="streamer.kafka.runner"):
        assert asyncio.run(scenario()) is False
    chain = [r.getMessage() for r in caplog.records if "a late job waits in" in r.getMessage()]
    assert len(chain) == 1 and "job (test_runner_stop.py" in chain[0] and "ask_the_broker" in chain[0], chain


def test_a_partition_known_to_be_behind_is_not_drained_without_asking_the_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the pipeline behind, the tick asked the broker for end offsets of partitions whose answer the last
    fetch already gave: two round trips under the pipeline's lock each (10% of its time at 2,000 devices). A
    highwater beyond what is handled answers "not drained" locally; anything else still asks."""
    asked: list[int] = []
    highwater: dict[int, int | None] = {0: None}

    async def end_offsets(partitions: list[object]) -> dict[object, int]:
        asked.append(len(partitions))
        return dict.fromkeys(partitions, 10)

    async def scenario() -> list[tuple[bool, bool]]:
        runner = _runner(_Stage())
        monkeypatch.setattr(runner.consumer, "end_offsets", end_offsets)
        monkeypatch.setattr(runner.consumer, "highwater", lambda tp: highwater[tp.partition])
        answers = []
        for hw, handled in ((None, 9), (11, 9), (10, 9), (12, 12)):  # unknown, behind, caught up, stale highwater
            highwater[0] = hw
            runner.states[0].processed["t.in"] = handled
            answers.append((runner.behind(0), await runner.drained(0)))
        runner.states = {}
        answers.append((runner.behind(0), await runner.drained(0)))  # a partition not owned
        return answers

    answers = asyncio.run(scenario())
    assert answers == [(False, True), (True, False), (False, True), (False, True), (False, False)]
    assert asked == [1, 1, 1]  # the broker was asked whenever the highwater could not tell, and only then
