"""What the rollout guard knows: the rollouts in flight, the fixes waiting for a slot, the fixes
rolled back (the no-loop record, persisted by controller.rollout_guard in the operator's own
ConfigMap) and the outcome counts per baseline. Changed only through its methods; no I/O."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from kube_baseline.engine.models import RolledBackWorkload, Rollout, Rollouts
from kube_baseline.engine.rollout import rollout_view

Key = tuple[str, str, str]  # kind, namespace, name (store.WorkloadKey)
# At most this many rolled-back workloads are listed on a baseline's status.
LISTED = 20


@dataclass
class Flight:
    """A remediation rollout being followed."""

    key: Key
    baselines: tuple[str, ...]
    changes: dict[str, Any]  # field -> value the fix set
    started: float  # wall clock (time.time()): survives a restart through the record
    settings: Rollout = field(default_factory=Rollout)
    # Counted against maxInFlight; not once it shows no controller ever observed the workload
    # (nothing rolls: a Deployment created a moment ago, or a cluster without that controller).
    counted: bool = True

    def record(self) -> str:
        data = asdict(self)
        del data["counted"]
        data["settings"] = self.settings.model_dump(by_alias=True, mode="json")
        return json.dumps({"state": "InFlight", **data}, sort_keys=True)


@dataclass(frozen=True)
class RolledBack:
    """A fix undone: not re-applied while the template hashes to `template`."""

    key: Key
    baselines: tuple[str, ...]
    template: str
    reason: str
    fields: tuple[str, ...]

    def record(self) -> str:
        return json.dumps({"state": "RolledBack", **asdict(self)}, sort_keys=True)


def record_key(key: Key) -> str:
    """A ConfigMap data key for a workload (kinds, namespaces and names are DNS-safe)."""
    return ".".join(key)


def parse_record(text: str) -> Flight | RolledBack | None:
    try:
        data = json.loads(text)
        key: Key = tuple(data["key"])
        baselines = tuple(data["baselines"])
        if data.get("state") == "InFlight":
            settings = Rollout.model_validate(data.get("settings") or {})
            return Flight(key, baselines, dict(data["changes"]), float(data["started"]), settings)
        if data.get("state") == "RolledBack":
            return RolledBack(
                key, baselines, str(data["template"]), str(data["reason"]), tuple(data["fields"])
            )
    except (ValueError, KeyError, TypeError):
        return None
    return None


class RolloutBook:
    def __init__(self) -> None:
        self.in_flight: dict[Key, Flight] = {}  # changed only by take, uncount and landed
        self._counted: Counter[str] = Counter()  # baseline -> counted flights
        self.waiting: dict[Key, tuple[str, ...]] = {}  # in the order they came: served in order
        self.rolled_back: dict[Key, RolledBack] = {}
        self.outcomes: dict[str, Counter[str]] = {}  # baseline -> outcome -> count
        self.loaded = asyncio.Event()  # the persisted record was read (or cannot be)
        self.persisted = False  # the record ConfigMap exists and is written
        # Record entries waiting for the next write (None removes one), the future the writers of
        # those entries await, and the task writing them (controller.rollout_guard._persist).
        self.pending: dict[str, str | None] = {}
        self.batch: asyncio.Future[None] | None = None
        self.writer: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()  # one per flight followed
        # Kinds whose workloads no controller observes (learnt from an Unverified outcome; forgotten
        # once one shows an observedGeneration): their next flights conclude at the first read.
        self.no_controller: set[str] = set()
        # The latest state of each workload in flight as the watch delivered it (engine.rollout.
        # rollout_view; None: deleted), and the event that wakes its follower.
        self.seen: dict[Key, dict[str, Any] | None] = {}
        self.wakeups: dict[Key, asyncio.Event] = {}

    def observe(self, key: Key, obj: Mapping[str, Any] | None) -> None:
        """The watch delivered `key` (None: deleted): if it is in flight, keep its rollout view
        and wake its follower."""
        if key in self.in_flight:
            self.seen[key] = None if obj is None else rollout_view(obj)
            self.wakeups.setdefault(key, asyncio.Event()).set()

    def landed(self, key: Key) -> None:
        """The flight of `key` is over: forget what was seen of it."""
        flight = self.in_flight.pop(key, None)
        if flight is not None and flight.counted:
            self._counted.subtract(flight.baselines)
        self.seen.pop(key, None)
        self.wakeups.pop(key, None)

    def in_flight_for(self, baseline: str) -> int:
        """The flights counted against the baseline's maxInFlight (kept as a count: this is
        asked for every fix, with up to every governed workload in flight)."""
        return self._counted[baseline]

    def take(self, flight: Flight) -> None:
        self.in_flight[flight.key] = flight
        if flight.counted:
            self._counted.update(flight.baselines)

    def uncount(self, flight: Flight) -> None:
        """The flight no longer holds a slot (no controller observed its workload)."""
        if flight.counted and self.in_flight.get(flight.key) is flight:
            self._counted.subtract(flight.baselines)
        flight.counted = False

    def wait(self, key: Key, baselines: Iterable[str]) -> None:
        self.waiting.setdefault(key, tuple(baselines))

    def count(self, baselines: Iterable[str], outcome: str) -> None:
        for name in baselines:
            self.outcomes.setdefault(name, Counter())[outcome] += 1

    def load(self, data: Mapping[str, str]) -> list[Flight]:
        """Take the persisted records; returns the flights to resume."""
        flights = []
        for text in data.values():
            found = parse_record(text)
            if isinstance(found, RolledBack):
                self.rolled_back[found.key] = found
            elif isinstance(found, Flight):
                self.take(found)
                flights.append(found)
        return flights

    def summary(self, baseline: str) -> Rollouts:
        rolled = sorted(k for k, r in self.rolled_back.items() if baseline in r.baselines)
        outcomes = self.outcomes.get(baseline, Counter())
        return Rollouts(
            in_flight=self.in_flight_for(baseline),
            waiting=sum(1 for b in self.waiting.values() if baseline in b),
            succeeded=outcomes["Succeeded"],
            unverified=outcomes["Unverified"],
            rolled_back=len(rolled),
            rolled_back_workloads=[
                RolledBackWorkload(
                    namespace=k[1],
                    kind=k[0],
                    name=k[2],
                    reason=self.rolled_back[k].reason[:300],
                    fields=list(self.rolled_back[k].fields),
                )
                for k in rolled[:LISTED]
            ],
        )
