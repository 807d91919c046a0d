"""The store contract: where the controller keeps transaction records, the input queue and the model.

The controller's logical thread is the only writer. It reports every change (:meth:`Store.put_txn`,
:meth:`Store.put_delta`) and calls :meth:`Store.commit` once per batch of events: everything reported since
the previous commit becomes durable together (group commit), and only then are results announced and
physical steps dispatched.

A *pipelined* store splits the commit in two so that the logical thread never waits for the disk:
:meth:`Store.seal` (on the logical thread) snapshots what was reported into an immutable batch, and
:meth:`Store.write` (on the controller's writer thread) makes batches durable, in order, several at once
when they queued up. The controller still announces a batch only once it is written.

The controller keeps only live transactions in memory: past ones are read back from the store
(:meth:`Store.get_txn`, :meth:`Store.find_txns`), from any thread, seeing only what was committed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from tropic.model import Delta, Model, Schema
from tropic.records.query import TxnQuery
from tropic.records.record import Transaction
from tropic.store.observations import MemoryObservations, ObservationRow


@dataclass(slots=True)
class History:
    """What a controller needs to know of the final records it does not load: how many ended how (its
    counters cover the store's whole history) and the largest id (new ids follow it)."""

    last_id: int = 0
    submitted: int = 0
    committed: int = 0
    aborted: int = 0
    rolled_back: int = 0  # aborted after a rollback
    failed: int = 0
    killed: int = 0
    deferred: int = 0  # deferral events

    def count(self, state: str, deferrals: int, times: Collection[str], n: int = 1) -> None:
        """Count ``n`` records that ended (so far) in ``state`` after going through the states ``times``,
        deferred ``deferrals`` times in all."""
        self.submitted += n
        self.deferred += deferrals
        if state == "COMMITTED":
            self.committed += n
        elif state == "FAILED":
            self.failed += n
        elif state == "ABORTED":
            self.aborted += n
            if "ROLLING_BACK" in times:
                self.rolled_back += n
        if state in ("COMMITTED", "ABORTED", "FAILED") and "KILLED" in times:
            self.killed += n

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in History.__slots__}

    def add(self, other: History) -> None:
        """Add the counts of ``other`` (records counted apart, e.g. those retention removed)."""
        self.last_id = max(self.last_id, other.last_id)
        for name in History.__slots__:
            if name != "last_id":
                setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class Restored:
    """What a store hands back on open: the model and every transaction it knew (with ``history`` set,
    from :meth:`Store.restore_live`: only the live ones, the final ones summed up there)."""

    model: Model
    txns: list[Transaction] = field(default_factory=list)
    fenced: dict[str, int] = field(default_factory=dict)
    history: History | None = None
    retired: History | None = None  # the counts of the records retention removed from the store


class Store(ABC):
    uri = "memory://"
    pipelined = False  # implements seal() and write(): the controller commits on a writer thread

    @abstractmethod
    def restore(self, schema: Schema) -> Restored | None:
        """The persisted state, or None for an empty store."""

    def restore_live(self, schema: Schema) -> Restored | None:
        """Like :meth:`restore`, but with only the live records, the final ones summed up in
        ``history`` (what a controller opens with: past records stay in the store). Stores that can
        leave the final records unread override this."""
        restored = self.restore(schema)
        if restored is None:
            return None
        history = History()
        if restored.retired is not None:
            history.add(restored.retired)
        for t in restored.txns:
            history.last_id = max(history.last_id, t.id)
            history.count(t.state.value, t.deferrals, t.times)
        restored.txns = [t for t in restored.txns if not t.final]
        restored.history = history
        return restored

    @abstractmethod
    def init_model(self, model: Model) -> None:
        """Persist a freshly built model (an empty store's first state)."""

    @abstractmethod
    def put_txn(self, txn: Transaction) -> None: ...

    @abstractmethod
    def put_delta(self, delta: Delta, *, revert: bool = False) -> None:
        """Apply a committed (or reverted) transaction's model change to the persisted model."""

    @abstractmethod
    def put_fence(self, path: str, txn: int | None) -> None:
        """Fence ``path`` for ``txn`` (None: clear the fence)."""

    @abstractmethod
    def commit(self) -> None:
        """Make every change reported since the last commit durable, atomically."""

    @abstractmethod
    def get_txn(self, txn_id: int) -> Transaction | None:
        """The committed record of transaction ``txn_id`` with its action log, or None."""

    @abstractmethod
    def find_txns(self, query: TxnQuery, extra: int = 0) -> list[Transaction]:
        """Committed records matching ``query``, newest first, at most ``query.limit + extra`` of them
        (the controller asks for ``extra`` more to replace stale copies of live ones); without their
        action logs."""

    def bind_key(self, txn_id: int, kid: str, fingerprint: str) -> None:  # noqa: B027 - optional
        """Stores that keep idempotency keys: store key ``kid`` (used for a request with ``fingerprint``)
        with transaction ``txn_id``'s first record, in the same commit. Called on the submitting thread
        before that transaction is queued, so it is bound before the record is reported."""

    def seal(self) -> object | None:
        """Pipelined stores: take every change reported since the last seal as an immutable batch (None
        if there is none). Called on the logical thread; later changes to the records do not affect it."""
        raise NotImplementedError(f"{type(self).__name__} is not pipelined")

    def write(self, batches: Sequence[object]) -> None:
        """Pipelined stores: make ``batches`` (from :meth:`seal`, in order) durable, atomically together.
        Called on one writer thread, never concurrently with itself."""
        raise NotImplementedError(f"{type(self).__name__} is not pipelined")

    def close(self) -> None:  # noqa: B027 - optional hook: stores without resources need nothing
        """Release the store."""

    # --- observations (the autopilot's knowledge base; see tropic.store.observations) ----------------
    # Durable stores keep them beside the model (SQLite: a table; ZooKeeper: chunked znodes per time
    # bucket). This default keeps them in this process only, for stores without persistence.
    _observations: MemoryObservations | None = None

    def append_observations(self, rows: Sequence[ObservationRow]) -> None:
        """Keep ``rows`` (``(subject, metric, value, at, source)``), written together (one write per pass).
        Called from any thread (the autopilot's, not the logical thread); each store serialises it with
        its own commits. A refused row (:class:`~tropic.errors.InvalidArguments`) refuses the batch."""
        self._memory_observations().append(rows)

    def observations(
        self,
        subject_prefix: str = "",
        metric: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[ObservationRow]:
        """The newest ``limit`` rows whose subject starts with ``subject_prefix``, of ``metric`` (None:
        any), taken at or after ``since`` and before ``until``, oldest first."""
        return self._memory_observations().query(subject_prefix, metric, since, until, limit)

    def trim_observations(self, older_than: float | None = None, max_rows: int | None = None) -> int:
        """Remove the rows taken before ``older_than``, then the oldest beyond ``max_rows``; returns how
        many went (stores that remove in chunks may keep a little less than ``max_rows``)."""
        return self._memory_observations().trim(older_than, max_rows)

    def _memory_observations(self) -> MemoryObservations:
        if self._observations is None:
            self._observations = MemoryObservations()
        return self._observations


class MemoryStore(Store):
    """No persistence: for tests and the in-memory demo. It is the history too, so it holds every record
    it was given (use a durable store for a long-running service)."""

    def __init__(self) -> None:
        self._records: dict[int, Transaction] = {}

    def restore(self, schema: Schema) -> Restored | None:
        return None

    def init_model(self, model: Model) -> None:
        pass

    def put_txn(self, txn: Transaction) -> None:
        self._records[txn.id] = txn

    def get_txn(self, txn_id: int) -> Transaction | None:
        return self._records.get(txn_id)

    def find_txns(self, query: TxnQuery, extra: int = 0) -> list[Transaction]:
        out: list[Transaction] = []
        for i in sorted(list(self._records), reverse=True):
            t = self._records[i]
            if query.matches(t):
                out.append(t)
                if len(out) == query.limit + extra:
                    break
        return out

    def put_delta(self, delta: Delta, *, revert: bool = False) -> None:
        pass

    def put_fence(self, path: str, txn: int | None) -> None:
        pass

    def commit(self) -> None:
        pass
