"""The partitioned consume-process-produce loop under each stage: outputs first, then state and offsets.

Per batch of one input partition the order is fixed: (1) the stage computes outputs and new key states, (2) the
outputs are sent and acknowledged by the broker, (3) the states and the partition's offset marker are written to
the changelog and acknowledged, (4) the offsets are committed (for lag monitoring only). A crash anywhere repeats
the input above the marker; the stage recognises the inputs its states already reflect and the rest is recomputed
into the same bytes. On assignment a partition's changelog is read back and the input resumes at the marker + 1.

A stage may keep key states in memory for a while (``Stage.replay_from`` names the oldest input they need): the
marker then stays below that input, so a crash repeats a few seconds of input instead of losing it. On a
revocation the runner asks the stage to write everything first (``Stage.checkpoint``), so a rebalance repeats
nothing. A stop lets the batch or timer in hand finish before that last write (``PartitionedRunner.exclusive``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.structs import ConsumerRecord

from streamer.kafka.produce import send_all
from streamer.kafka.store import MARKER_KEY, PartitionState, marker_value, restore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    """One record to publish; ``partition`` None lets the producer's partitioner choose."""

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Effects:
    """What one partition's batch produced: records to publish, then key states to make durable."""

    outgoing: list[Outgoing] = field(default_factory=list)
    writes: dict[bytes, bytes] = field(default_factory=dict)


class Stage(Protocol):
    name: str
    topics: list[str]  # co-partitioned input topics: partition p of each is handled together

    def assigned(self, states: dict[int, PartitionState]) -> None: ...
    def revoked(self, partitions: list[int]) -> None: ...
    async def handle(self, state: PartitionState, records: list[ConsumerRecord]) -> Effects: ...


class CheckpointingStage(Stage, Protocol):
    """A stage that writes key states every few seconds rather than with every batch."""

    def replay_from(self, partition: int) -> dict[str, int]:
        """Per input topic, the oldest offset some key's stored state does not reflect yet (absent: none)."""
        ...

    async def checkpoint(self, state: PartitionState, *, everything: bool) -> Effects:
        """The key states of the partition that are due (or, with ``everything``, all that are ahead of the
        changelog: a revocation or a shutdown is coming)."""
        ...


PUBLISH_PATIENCE_S = 300.0  # a broker away for longer than this crashes the worker (a supervisor restarts it)


async def publish(producer: AIOKafkaProducer, outgoing: list[Outgoing]) -> None:
    """Send records and wait until the broker has every one of them (acks=all, idempotent producer).

    A send that times out while the broker restarts (aiokafka gives up after its 40 s request timeout), or that
    the broker refuses with a retriable error while its partitions get their leaders back, is tried again, all
    records of the call in their order: a record the broker did get is then re-sent, byte-identical,
    which consumers collapse; one it did not get would otherwise cost the worker."""
    deadline = time.monotonic() + PUBLISH_PATIENCE_S
    while True:
        try:
            await asyncio.gather(*await send_all(producer, outgoing))
            return
        except KafkaError as exc:
            # Timeouts, lost connections and the retriable answers of a broker that is just back (no leader yet
            # for a partition: LeaderNotAvailable, NotLeaderForPartition), which crashed the worker in the chaos
            # suite; anything else is a bug or a configuration error and stops it.
            if not (exc.retriable or isinstance(exc, KafkaTimeoutError)) or time.monotonic() > deadline:
                raise
            log.warning("publishing %d records failed (%s); sending them again", len(outgoing), exc)
            await asyncio.sleep(1.0)


@dataclass(frozen=True)
class ConsumerTimings:
    session_timeout_ms: int = 6_000  # the broker's minimum: a killed worker's partitions move after ~6 s
    heartbeat_interval_ms: int = 1_000
    rebalance_timeout_ms: int = 30_000
    max_poll_records: int = 500
    revoke_checkpoint_s: float = 10.0  # writing the states on a revocation: past this, the next owner replays
    commit_timeout_s: float = 3.0  # a group offset commit (monitoring only) given up after this
    offsets_timeout_s: float = 3.0  # an end-offsets query (``drained``) given up after this: "cannot tell"
    stop_patience_s: float = 30.0  # a stop waits this long for the batch or timer in hand to finish


class PartitionedRunner:
    """Runs one stage: a consumer group member, the changelog of its partitions and the batch loop."""

    def __init__(
        self,
        stage: Stage,
        *,
        group_id: str,
        changelog: str,
        producer: AIOKafkaProducer,
        client_kwargs: dict[str, object],
        timings: ConsumerTimings = ConsumerTimings(),
    ) -> None:
        self.stage, self.changelog, self.producer = stage, changelog, producer
        self.client_kwargs, self.timings = client_kwargs, timings
        self.lock = asyncio.Lock()  # the batch loop, the rebalance listener and timers take turns
        self.states: dict[int, PartitionState] = {}
        self.uncommitted: dict[TopicPartition, int] = {}  # handled offsets + 1, for the next commit_offsets
        self.pending: set[TopicPartition] | None = None  # assigned, paused, not yet restored (maybe none)
        # Bumped by every revocation and assignment: a batch fetched before one is dropped, not processed (its
        # records come again from the restored marker + 1).
        self.generation = 0
        self.inflight: set[asyncio.Task[None]] = set()  # jobs under the lock; a stop lets them finish (``exclusive``)
        self.broken = False  # a job failed half-way: the live states must not be written any more
        self.stopping = False  # run() is stopping: its consumer is closed or about to be (``drained``)
        self.consumer = AIOKafkaConsumer(
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),  # keeps partition p of every topic together
            session_timeout_ms=timings.session_timeout_ms,
            heartbeat_interval_ms=timings.heartbeat_interval_ms,
            rebalance_timeout_ms=timings.rebalance_timeout_ms,
            max_poll_records=timings.max_poll_records,
            **client_kwargs,
        )

    async def run(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe(self.stage.topics, listener=_Listener(self))
        try:
            while True:
                if self.pending is not None:
                    await self.exclusive(self._restore_pending)
                generation = self.generation
                batches = await self.consumer.getmany(timeout_ms=200)
                if batches:

                    async def process(generation: int = generation, batches: Any = batches) -> None:
                        if generation == self.generation:
                            await self._process(batches)

                    await self.exclusive(process)
        finally:
            self.stopping = True
            if await self._settle() and not self.broken:
                with contextlib.suppress(Exception):
                    async with self.lock:
                        await self.checkpoint_all()
            with contextlib.suppress(Exception):
                await self.consumer.stop()  # a LeaveGroup: the group gives our partitions to the others at once
                log.info("%s: consumer stopped, group left", self.stage.name)

    async def exclusive(self, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` under the lock, to its end even when the caller is cancelled (a stop).

        A batch or timer cut half-way may have moved live key states past outputs it never published; the final
        checkpoint would make those states durable and a replay would then skip their inputs (a feature window
        lost: the short chaos test's rare miss). So a cancellation only stops the caller from waiting; the stop
        (``_settle``) waits for the job, and writes the states only once every job has finished. A job that
        failed (or was cut after all) leaves ``broken`` set: no later job runs, nothing more is written and the
        next owner replays. (A state checkpoint queued behind a batch whose publish failed wrote the device
        states that batch had moved on: three feature windows lost in the chaos suite, fixed so.)"""

        async def locked() -> None:
            async with self.lock:
                if self.broken:  # a timer waiting for the lock would write the states the failed job moved on
                    return
                try:
                    await job()
                except BaseException:  # its outputs may be unpublished while the live states moved on
                    self.broken = True
                    raise

        task = asyncio.ensure_future(locked())
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._report_unawaited)  # nobody waits for its outcome any more
            raise

    def _report_unawaited(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: a job failed after its caller stopped waiting", self.stage.name, exc_info=task.exception())

    async def _settle(self) -> bool:
        """Wait for the jobs in hand; whether they all finished (only then may the live states be written)."""
        if not self.inflight:
            return True
        _, late = await asyncio.wait(set(self.inflight), timeout=self.timings.stop_patience_s)
        if late:
            log.warning(
                "%s: %d jobs still running at the stop; states not written, the next owner replays",
                self.stage.name,
                len(late),
            )
            for task in late:
                log.warning("%s: a late job waits in %s", self.stage.name, _await_chain(task))
                task.cancel()
            return False
        return True

    async def _process(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        by_partition: dict[int, list[ConsumerRecord]] = defaultdict(list)
        for tp, records in batches.items():
            if tp.partition in self.states:  # a batch fetched before a revocation is not ours any more
                by_partition[tp.partition] += records
        # Each partition is published as soon as it is computed, while the next one is computed: after a restart
        # the first outputs come after one partition's share of the catch-up, and the broker round trips of a
        # partition's two publishes (outputs, then states and marker; each waits the producer's linger) overlap
        # the work on the others instead of adding up (at 300 devices a lower ingest->alert latency in two runs;
        # no CPU change at 1,000, where the worker is bound by the GIL: docs/RESULTS.md, "Fleet").
        # The order that matters is kept: within a partition, outputs before states, batch after batch.
        commits: list[asyncio.Task[None]] = []
        try:
            for p, recs in by_partition.items():
                for done in (c for c in commits if c.done()):
                    done.result()  # a failed publish stops the batch before more states move
                effects = await self.stage.handle(self.states[p], recs)
                commits.append(asyncio.ensure_future(self.commit({p: effects}, {p: recs})))
        finally:
            outcomes = await asyncio.gather(*commits, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def commit(self, effects: dict[int, Effects], records: dict[int, list[ConsumerRecord]] | None = None) -> None:
        """Publish the outputs, then the states and markers, then commit; records may be empty (timers)."""
        await publish(self.producer, [o for e in effects.values() for o in e.outgoing])
        durable: list[Outgoing] = []
        markers: dict[int, dict[str, int]] = {}
        for p, e in effects.items():
            durable += [Outgoing(self.changelog, k, v, p) for k, v in e.writes.items()]
            offsets = self._marker(self.states[p], (records or {}).get(p, ()))
            if offsets != self.states[p].offsets:
                markers[p] = offsets
                durable.append(Outgoing(self.changelog, MARKER_KEY, marker_value(offsets), p))
        await publish(self.producer, durable)
        for p, e in effects.items():
            self.states[p].values.update(e.writes)
            self.states[p].offsets = markers.get(p, self.states[p].offsets)
        # Committed: what is handled, not the marker (which may stay a few seconds behind), by a timer
        # (``commit_offsets``): lag monitoring only, so no round trip per batch.
        for p in records or {}:
            if p in self.states:
                self.uncommitted.update({TopicPartition(t, p): o + 1 for t, o in self.states[p].processed.items()})

    def _marker(self, state: PartitionState, records: Iterable[ConsumerRecord]) -> dict[str, int]:
        pending = self.stage.replay_from(state.partition) if hasattr(self.stage, "replay_from") else {}
        return state.marker_after(((r.topic, r.offset) for r in records), pending)

    async def checkpoint_due(self) -> None:
        """Write the key states that have waited long enough (a timer: devices that went quiet still get written)."""
        stage = self.stage
        if hasattr(stage, "checkpoint") and self.states:
            effects = {p: await stage.checkpoint(st, everything=False) for p, st in self.states.items()}
            await self.commit({p: e for p, e in effects.items() if e.writes})

    async def checkpoint_all(self) -> None:
        """Write every pending key state of every owned partition (a revocation or a shutdown is coming)."""
        stage = self.stage
        if not hasattr(stage, "checkpoint") or not self.states or self.broken:
            return
        try:
            async with asyncio.timeout(self.timings.revoke_checkpoint_s):
                await self.commit({p: await stage.checkpoint(st, everything=True) for p, st in self.states.items()})
        except Exception as exc:  # the broker away or slow: the next owner replays from the marker instead
            log.warning("%s: states not written before the revocation (%s); the next owner replays", stage.name, exc)

    async def commit_offsets(self) -> None:
        """Commit what is handled (a timer; informational only: a failed commit changes nothing).

        Bounded, and not under the lock: aiokafka retries a commit for as long as the group coordinator is
        unavailable or still loading (after a broker restart, for tens of seconds), and a commit held under the
        lock stopped the batch loop for as long (the chaos suite's 20-40 s without output after a broker restart).
        A commit that times out is dropped: the next one carries newer offsets."""
        offsets, self.uncommitted = self.uncommitted, {}
        if offsets:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.timings.commit_timeout_s):
                    await self.consumer.commit(offsets)

    async def drained(self, partition: int) -> bool:
        """Whether every record of the stage's first input topic on ``partition`` that exists now is processed and
        its outputs published (the marker, not the fetch position, which runs ahead of the batch in hand)."""
        state = self.states.get(partition)
        if state is None:
            return False
        if self.stopping:  # another runner's timer asks (the pipeline's tick asks ingest's): our consumer is closing
            return False
        if self.behind(partition):
            return False
        topic = self.stage.topics[0]
        tp = TopicPartition(topic, partition)
        try:
            # Bounded: a stopped consumer's query waits for metadata that never comes. The pipeline's tick asked the
            # ingest runner just as that one stopped, held the pipeline's lock until the stop patience ran out, and
            # so the stop wrote no state and the next owner replayed and published again everything since the
            # last checkpoint (tests/kafka/test_pipeline_broker.py, the restart test, failed in CI so).
            async with asyncio.timeout(self.timings.offsets_timeout_s):
                end = (await self.consumer.end_offsets([tp]))[tp]
        except Exception:  # a rebalance, the broker away, the consumer stopped: we cannot tell
            return False
        return state.handled(topic) + 1 >= end

    def behind(self, partition: int) -> bool:
        """Whether ``partition`` surely has records of the first input topic not processed yet, known without asking
        the broker: the end offset the last fetch response carried (the highwater, which only grows) lies beyond
        what is handled. False means "cannot tell here" (nothing fetched yet, or caught up as of the last fetch).

        The pipeline's tick asks ``drained`` of the partitions whose newest record is more than the late grace old;
        with the pipeline behind, those are the partitions that the last batches happened not to carry, and each
        asking cost two end-offset round trips under the pipeline's lock: 10% of that lock's time at 2,000 devices
        (docs/RESULTS.md, "Fleet"), and the answer was always no."""
        state = self.states.get(partition)
        if state is None:
            return False
        topic = self.stage.topics[0]
        try:
            end = self.consumer.highwater(TopicPartition(topic, partition))
        except AssertionError:  # aiokafka asserts the partition is assigned: a rebalance under way
            return False
        return end is not None and state.handled(topic) + 1 < end

    async def every(self, interval_s: float, job: Callable[[], Awaitable[None]], *, locked: bool = True) -> None:
        """Run ``job`` every ``interval_s``: under the lock (timers of the stage; a stop lets a run finish), or
        beside the batch loop when it touches no state (``locked=False``: the offset commits)."""
        while True:
            await asyncio.sleep(interval_s)
            if locked:
                await self.exclusive(job)
            else:
                await job()

    def _assigned(self, assigned: set[TopicPartition]) -> None:
        """In the assignment callback: nothing slow (no heartbeat is sent until it returns)."""
        self.generation += 1
        self.pending = set(assigned)
        self.consumer.pause(*assigned)

    def _revoked(self, revoked: set[TopicPartition]) -> None:
        self.generation += 1
        self.pending = None
        self.states = {}
        self.stage.revoked(sorted({tp.partition for tp in revoked}))

    async def _restore_pending(self) -> None:
        if self.pending is None:  # revoked while the loop waited for the lock
            return
        assigned, self.pending = self.pending, None
        wanted = sorted({tp.partition for tp in assigned})
        started = time.monotonic()
        try:
            # Always from the changelog: a partition we held before may have been processed elsewhere since.
            self.states = await restore(self.changelog, wanted, self.client_kwargs)
        except (KafkaError, OSError) as exc:  # the broker away for a moment: the partitions stay paused, try again
            log.warning("%s: restoring partitions %s failed (%s); trying again", self.stage.name, wanted, exc)
            self.pending = assigned
            return
        self.stage.assigned(self.states)
        for tp in assigned:
            resume = self.states[tp.partition].resume_offset(tp.topic)
            # Offset 0 below the log start (retention) is out of range: auto_offset_reset="earliest" moves it to the
            # start, as seek_to_beginning would, without waiting on the fetch in flight for every partition.
            self.consumer.seek(tp, 0 if resume is None else resume)
        self.consumer.resume(*assigned)
        log.info("%s: partitions %s ready in %.1f s", self.stage.name, wanted, time.monotonic() - started)


def _await_chain(task: asyncio.Task[Any]) -> str:
    """Where a suspended task waits: each coroutine of its await chain, outermost first (a stop's diagnosis)."""
    links: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None and len(links) < 30:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            links.append(f"{frame.f_code.co_name} ({frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " -> ".join(links) or "(no frame)"


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """A rebalance waits for the batch in hand, then drops the partitions' live objects; the new ones are paused
    until the batch loop has restored them."""

    def __init__(self, runner: PartitionedRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.runner.lock:
            await self.runner.checkpoint_all()
            await self.runner.commit_offsets()  # while the partitions are still ours
            self.runner._revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        async with self.runner.lock:
            self.runner._assigned(set(assigned))
