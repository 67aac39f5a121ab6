"""Runs a correction plan against the three systems, once per key, whatever crashes.

Every key is claimed in the ledger before it is sent, so two pushers never send it at the
same time; every attempt is logged; a key whose last attempt had no answer is read back
from the target before it is sent again (vendors forget keys, and the ERP has none).
"""

from __future__ import annotations

import os
import random
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from revops_pipelines.corrections.policy import Policy
from revops_pipelines.corrections.targets import Outcome
from revops_pipelines.ledger import Claim, Ledger

# Per action: applied (sent now), verified (found applied by reading back), done (applied
# before), failed (dead letter), waiting (a prerequisite is not applied), deferred (the
# target's allowance is spent), busy (another pusher holds the key), unknown (no answer).
CLAIM_CHUNK = 200
RESULTS = ("applied", "verified", "done", "failed", "waiting", "deferred", "busy", "unknown")


@dataclass
class PushSummary:
    plan_id: str
    counts: Counter = field(default_factory=Counter)
    by_target: dict[str, Counter] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, target: str, result: str) -> None:
        self.counts[result] += 1
        self.by_target.setdefault(target, Counter())[result] += 1

    @property
    def complete(self) -> bool:
        """Every action is applied (now or before); nothing is left to send."""
        return set(self.counts) <= {"applied", "verified", "done"}

    def line(self) -> str:
        parts = ", ".join(f"{name} {self.counts[name]}" for name in RESULTS if self.counts[name])
        return f"plan {self.plan_id}: {parts or 'nothing to do'} in {self.seconds:.1f} s"


class Progress:
    """A line on stderr every few seconds while a long push runs."""

    def __init__(self, total: int, *, every_s: float = 2.0, stream: Any = None) -> None:
        self.total = total
        self.every_s = every_s
        self.stream = stream or sys.stderr
        self.done = 0
        self._started = time.monotonic()
        self._last = self._started
        self._lock = threading.Lock()

    def step(self) -> None:
        with self._lock:
            self.done += 1
            now = time.monotonic()
            if now - self._last < self.every_s and self.done != self.total:
                return
            self._last = now
            rate = self.done / max(1e-9, now - self._started)
        print(f"pushed {self.done}/{self.total} ({rate:.0f}/s)", file=self.stream, flush=True)


class AttemptLog:
    """Attempts written to the ledger by one thread, many rows a transaction (group commit).

    A `sent` row is committed before its request goes out (`sent` waits for the commit), so
    a crash loses no attempt. Answers wait for the next commit, at most `every_s`: a key
    whose answer row was lost is still claimed as pending, so the next run reads it back
    before it sends anything again.
    """

    def __init__(self, ledger: Ledger, *, every_s: float = 0.05) -> None:
        self.ledger = ledger
        self.every_s = every_s
        self._rows: list[dict[str, Any]] = []
        self._oldest = 0.0  # when the oldest row still queued was queued
        self._urgent = False  # someone waits for the queued rows
        self._queued = 0  # rows handed in so far, and of those, committed
        self._committed = 0
        self._closed = False
        self._failure: BaseException | None = None
        lock = threading.Lock()
        self._queued_rows = threading.Condition(lock)  # the writer waits on this one,
        self._changed = threading.Condition(lock)  # those waiting for a commit on this one
        self._thread = threading.Thread(target=self._run, name="attempt-log", daemon=True)
        self._thread.start()

    def add(self, *rows: dict[str, Any]) -> int:
        """Queue rows for a commit within `every_s`; the number to `wait` for."""
        with self._changed:
            self._raise_failure()
            if not self._rows:
                self._oldest = time.monotonic()
                self._queued_rows.notify()
            self._rows.extend(rows)
            self._queued += len(rows)
            return self._queued

    def sent(self, *rows: dict[str, Any]) -> None:
        """Log requests about to be sent, and return once the log holds them."""
        self.wait(self.add(*({**row, "status": "sent"} for row in rows)))

    def wait(self, number: int | None = None) -> None:
        """Until the first `number` rows (all queued ones by default) are committed."""
        with self._changed:
            number = self._queued if number is None else number
            if self._committed < number:
                self._urgent = True
                self._queued_rows.notify()
            while self._committed < number and self._failure is None:
                self._changed.wait()
            self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise RuntimeError("the ledger refused attempts") from self._failure

    def _next_batch(self) -> tuple[list[dict[str, Any]], int] | None:
        """The queued rows once someone waits for them, they are `every_s` old or the log
        closes; None when it is closed and empty. Called with the lock held."""
        while True:
            age = time.monotonic() - self._oldest
            if self._rows and (self._urgent or self._closed or age >= self.every_s):
                rows, self._rows, self._urgent = self._rows, [], False
                return rows, self._queued
            if self._closed:
                return None
            self._queued_rows.wait(self.every_s - age if self._rows else None)

    def _run(self) -> None:
        while True:
            with self._changed:
                batch = self._next_batch()
            if batch is None:
                return
            rows, upto = batch
            try:
                self.ledger.log_attempts(rows)
            except BaseException as error:  # reported to the pusher by add(), wait(), close()
                with self._changed:
                    self._failure = error
                    self._changed.notify_all()
                return
            with self._changed:
                self._committed = upto
                self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._queued_rows.notify()
        self._thread.join()
        self._raise_failure()


def _levels(actions: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Actions by depth of prerequisites: a level only refers to earlier levels."""
    by_id = {a["action_id"]: a for a in actions}
    depth: dict[str, int] = {}

    def level(action_id: str) -> int:
        if action_id not in depth:
            prerequisites = [p for p in by_id[action_id]["prerequisites"] if p in by_id]
            depth[action_id] = 1 + max(map(level, prerequisites), default=-1)
        return depth[action_id]

    levels: dict[int, list[dict[str, Any]]] = {}
    for action in sorted(actions, key=lambda a: a["seq"]):
        levels.setdefault(level(action["action_id"]), []).append(action)
    return [levels[n] for n in sorted(levels)]


class Pusher:
    """Sends plan actions through `targets` ({"erp": ErpTarget, ...}) under `policy` limits."""

    def __init__(
        self,
        ledger: Ledger,
        targets: dict[str, Any],
        policy: Policy,
        *,
        owner: str | None = None,
        lease_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        progress: Progress | None = None,
    ) -> None:
        self.ledger = ledger
        self.targets = targets
        self.policy = policy
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease_s = lease_s
        self.sleep = sleep
        self.progress = progress
        self._random = random.Random()
        self._numbers: dict[str, int] = {}  # key → its attempt now
        self._numbers_lock = threading.Lock()

    def push(self, plan_id: str, actions: Iterable[dict[str, Any]]) -> PushSummary:
        started = time.monotonic()
        summary = PushSummary(plan_id)
        applied: set[str] = set()
        lock = threading.Lock()
        self._attempts = AttemptLog(self.ledger)
        try:
            self._push_levels(plan_id, list(actions), summary, applied, lock)
        finally:
            self._attempts.close()
        summary.seconds = time.monotonic() - started
        return summary

    def _push_levels(self, plan_id, actions, summary, applied, lock) -> None:
        for level in _levels(actions):
            results: dict[str, str] = {}
            ready = []
            for action in level:
                if all(p in applied for p in action["prerequisites"]):
                    ready.append(action)
                else:
                    results[action["action_id"]] = "waiting"
            threads = []
            for target, group in _by_target(ready).items():

                def run(target: str = target, group: list = group, out: dict = results) -> None:
                    for action_id, result in self._push_target(plan_id, target, group):
                        with lock:
                            out[action_id] = result
                        if self.progress:
                            self.progress.step()

                thread = threading.Thread(target=run, name=f"push-{target}")
                threads.append(thread)
                thread.start()
            for thread in threads:
                thread.join()
            for action in level:
                result = results[action["action_id"]]
                summary.add(action["target"], result)
                if result in ("applied", "verified", "done"):
                    applied.add(action["action_id"])

    # -- one target

    def _push_target(
        self, plan_id: str, target: str, actions: list[dict[str, Any]]
    ) -> Iterable[tuple[str, str]]:
        limits = self.policy.targets[target]
        if target == "crm":
            yield from self._push_crm(plan_id, actions)
            return
        # More workers than the target takes at once: while its client holds every request
        # slot (the concurrency limit), the others log and prepare, so the next request is
        # ready the moment a slot frees.
        chunks = [actions[n : n + CLAIM_CHUNK] for n in range(0, len(actions), CLAIM_CHUNK)]
        with ThreadPoolExecutor(max_workers=2 * max(1, limits.concurrency) + 1) as pool:
            running: list[tuple[list[dict[str, Any]], list]] = []
            for chunk in chunks:
                claims = self.ledger.claim_many(
                    {a["idempotency_key"]: (plan_id, a["action_id"]) for a in chunk},
                    owner=self.owner,
                    lease_s=self.lease_s,
                )
                futures = [
                    pool.submit(self._push_one, plan_id, a, claims[a["idempotency_key"]])
                    for a in chunk
                ]
                running.append((chunk, futures))
                if len(running) > 1:  # at most two chunks claimed and not yet done
                    done_chunk, done = running.pop(0)
                    for action, future in zip(done_chunk, done, strict=True):
                        yield action["action_id"], future.result()
            for done_chunk, done in running:
                for action, future in zip(done_chunk, done, strict=True):
                    yield action["action_id"], future.result()

    def _claim(self, plan_id: str, action: dict[str, Any]) -> tuple[bool, str | None]:
        """(claimed, previous outcome); when not claimed, previous is what holds the key."""
        claim = self.ledger.claim(
            action["idempotency_key"],
            plan_id=plan_id,
            action_id=action["action_id"],
            owner=self.owner,
            lease_s=self.lease_s,
        )
        if claim is not None:
            self._number(claim)
            return True, claim.previous_outcome
        outcome = self.ledger.outcomes([action["idempotency_key"]]).get(action["idempotency_key"])
        return False, outcome

    def _row(self, plan_id: str, action: dict[str, Any]) -> dict[str, Any]:
        key = action["idempotency_key"]
        with self._numbers_lock:
            attempt = self._numbers.get(key, 0)
        return {"plan_id": plan_id, "action_id": action["action_id"], "key": key,
                "attempt": attempt, "pusher": self.owner}  # fmt: skip

    def _number(self, claim: Claim) -> None:
        """Attempts are numbered from what the log holds when the key is claimed."""
        with self._numbers_lock:
            self._numbers[claim.key] = max(self._numbers.get(claim.key, 0), claim.attempts)

    def _sent(self, plan_id: str, actions: list[dict[str, Any]]) -> None:
        """Logged, and committed, before the request that carries them goes out."""
        with self._numbers_lock:
            for action in actions:
                key = action["idempotency_key"]
                self._numbers[key] = self._numbers.get(key, 0) + 1
        self._attempts.sent(*(self._row(plan_id, a) for a in actions))

    def _log(self, plan_id: str, action: dict[str, Any], outcome: Outcome, settle: str | None):
        self._attempts.add(
            {
                **self._row(plan_id, action),
                "status": outcome.status if outcome.response != "read back" else "verified",
                "http_status": outcome.http_status,
                "response": outcome.response,
                "outcome": settle,
                "target_id": outcome.target_id,
            }
        )

    def _settle(self, action: dict[str, Any], outcome: str) -> None:
        self._attempts.wait()  # the attempts first: the settlement is what a later run trusts
        self.ledger.settle(action["idempotency_key"], owner=self.owner, outcome=outcome)

    def _wait(self, attempt: int, outcome: Outcome) -> None:
        if outcome.retry_after is not None:
            self.sleep(min(outcome.retry_after, 30.0))
        else:
            self.sleep(min(30.0, 0.25 * 2**attempt) * (0.5 + self._random.random()))

    def _push_one(self, plan_id: str, action: dict[str, Any], claim: Claim | None) -> str:
        target = self.targets[action["target"]]
        if claim is None:
            previous = self.ledger.outcomes([action["idempotency_key"]]).get(
                action["idempotency_key"]
            )
            return {"applied": "done", "dead": "failed"}.get(previous or "", "busy")
        self._number(claim)
        must_verify = claim.previous_outcome in ("pending", "unknown")
        max_attempts = self.policy.targets[action["target"]].max_attempts
        outcome = Outcome("unknown")
        for attempt in range(max_attempts):
            if attempt and not self._claim(plan_id, action)[0]:
                return "busy"
            if must_verify:
                found = target.verify(action)
                if found is not None and found.status == "applied":
                    self._log(plan_id, action, found, "applied")
                    return "verified"
                if found is not None:  # the read itself failed: try again later
                    self._log(plan_id, action, found, None)
                    self._wait(attempt, found)
                    continue
            ready = target.prepare(action)
            if isinstance(ready, Outcome):
                outcome = ready  # nothing was sent
            else:
                self._sent(plan_id, [action])
                outcome = target.write(action, ready)
            if outcome.status == "applied":
                self._log(plan_id, action, outcome, "applied")
                return "applied"
            if outcome.status == "waiting":
                self._settle(action, "pending")
                return "waiting"
            if outcome.status == "failed":
                self._log(plan_id, action, outcome, "dead")
                self._dead_letter(plan_id, action, outcome)
                return "failed"
            must_verify = outcome.status == "unknown"
            self._log(plan_id, action, outcome, None)
            if attempt + 1 < max_attempts:
                self._wait(attempt, outcome)
        self._settle(action, "unknown" if outcome.status == "unknown" else "pending")
        return "unknown"

    def _dead_letter(self, plan_id: str, action: dict[str, Any], outcome: Outcome) -> None:
        self.ledger.add_dead_letter(
            plan_id=plan_id,
            action=action,
            http_status=outcome.http_status,
            error_code=outcome.code or "error",
            error_message=outcome.response or "",
        )

    # -- the CRM: batches, and the daily allowance

    def _push_crm(self, plan_id: str, actions: list[dict[str, Any]]) -> Iterable[tuple[str, str]]:
        target = self.targets["crm"]
        limits = self.policy.targets["crm"]
        pending = list(actions)
        while pending:
            if target.exhausted():
                for action in pending:
                    yield action["action_id"], "deferred"
                return
            batch, pending = pending[: limits.batch_size], pending[limits.batch_size :]
            to_send = []
            for action in batch:
                claimed, previous = self._claim(plan_id, action)
                if not claimed:
                    yield (
                        action["action_id"],
                        {"applied": "done", "dead": "failed"}.get(previous or "", "busy"),
                    )
                elif previous in ("pending", "unknown"):
                    found = target.verify(action)
                    if found is not None and found.status == "applied":
                        self._log(plan_id, action, found, "applied")
                        yield action["action_id"], "verified"
                    else:
                        to_send.append(action)
                else:
                    to_send.append(action)
            for attempt in range(limits.max_attempts):
                if not to_send:
                    break
                self._sent(plan_id, to_send)
                outcomes = target.send_batch(to_send)
                retry = []
                for action, outcome in zip(to_send, outcomes, strict=True):
                    if outcome.status == "applied":
                        self._log(plan_id, action, outcome, "applied")
                        yield action["action_id"], "applied"
                    elif outcome.status == "failed":
                        self._log(plan_id, action, outcome, "dead")
                        self._dead_letter(plan_id, action, outcome)
                        yield action["action_id"], "failed"
                    else:
                        # A field update sent twice leaves the same value: re-sending is safe.
                        self._log(plan_id, action, outcome, None)
                        retry.append((action, outcome))
                to_send = [action for action, _ in retry]
                if to_send and attempt + 1 < limits.max_attempts:
                    self._wait(attempt, retry[0][1])
                    to_send = [a for a in to_send if self._claim(plan_id, a)[0]]
            for action in to_send:
                self._settle(action, "unknown")
                yield action["action_id"], "unknown"


def _by_target(actions: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for action in actions:
        groups.setdefault(action["target"], []).append(action)
    return groups
