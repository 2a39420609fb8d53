"""The dispatcher: claims due deliveries, sends each through its channel once, records it.

The ledger (:mod:`scheduler.ledger.claims`) claims atomically and writes every outcome
guarded by the claim; :mod:`scheduler.dispatch.decide` says what each claim calls for. This
module is the loop around them.

Sends that went out are recorded in batches by a thread of their own
(:class:`~scheduler.dispatch.recorder.Recorder`), while the claiming thread claims the next
batch before the last one is done, so the senders never wait for the database. A claim is
renewed just before its send only when it has waited long enough that a reconciler could be
near taking it.

A crash between the provider call and the write leaves the row in ``sending``;
:meth:`Dispatcher.reconcile` asks the notifier whether it was sent (Twilio can list
messages) and records it, or, when the notifier cannot tell, returns it to pending:
at-least-once for those channels, never silently lost.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ALL_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from config.model import mask_address
from notifiers.base import Notifier, NotifierError, SendResult, mask_addresses
from notifiers.registry import NotifierSet
from rituals import pulse
from scheduler.dispatch.decide import (
    MAY_REPEAT,
    SENT_AGAIN,
    UNSURE,
    after_failure,
    decide,
    still_unsure,
)
from scheduler.dispatch.recorder import RECORD_EVERY, Recorder, Sent
from scheduler.dispatch.retry import RetryPolicy
from scheduler.ledger import Busy, Ledger
from scheduler.ledger.claims import Claim, MoveOn, SentRecord
from scheduler.ledger.receipts import FAILED
from scheduler.metrics import LATENESS, SEND_DURATION, SENDS

__all__ = ["MAY_REPEAT", "UNSURE", "Claim", "Dispatcher", "RetryPolicy"]

# The name operators know it by (and filter its lines by), whatever the module's path.
log = logging.getLogger("scheduler.dispatcher")

Clock = Callable[[], datetime]

RECORD_RETRIES = (0.5, 2.0, 5.0)  # seconds between tries to record an outcome

_T = TypeVar("_T")


class Dispatcher:
    """Sends due deliveries. One per worker process; safe to run in several processes."""

    def __init__(
        self,
        ledger: Ledger,
        notifiers: NotifierSet,
        worker_id: str,
        *,
        clock: Clock,
        senders: int = 32,
        batch_size: int | None = None,
        retry: RetryPolicy | None = None,
        claim_timeout: timedelta = timedelta(minutes=5),
        rng: random.Random | None = None,
    ) -> None:
        self.ledger = ledger
        self.notifiers = notifiers
        self.worker_id = worker_id
        self.clock = clock
        # A few claims per sender: claims held in the queue age while earlier sends run.
        self.batch_size = batch_size or senders * 4
        self.retry = retry or RetryPolicy()
        self.claim_timeout = claim_timeout
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=senders, thread_name_prefix="tend-send")
        self._recorder = Recorder(self._record)
        self._stopping = threading.Event()
        self._run_lock = threading.Lock()

    # ------------------------------------------------------------------ the loop

    def stop(self) -> None:
        """Claim nothing more; sends in flight finish (see :meth:`close`)."""
        self._stopping.set()

    def wait_stopping(self, seconds: float) -> bool:
        return self._stopping.wait(seconds)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def stopping_event(self) -> threading.Event:
        return self._stopping

    def close(self) -> None:
        self.stop()
        self._pool.shutdown(wait=True)
        self._recorder.close()  # whatever went out and is not written yet

    def run_until_idle(self) -> int:
        """Claim and send until nothing is due; return how many were claimed.

        The next batch is claimed as soon as no more than one batch is still in the
        senders' hands, and the outcomes of finished sends are recorded between claims, so
        the senders are kept busy. Returns once every claim is settled and recorded.
        """
        total = 0
        with self._run_lock:  # one loop per process: the wake-up job and the poll coincide
            in_flight: set[Future[None]] = set()
            more = True
            try:
                while True:
                    if more and not self.stopping and len(in_flight) <= self.batch_size:
                        claims = self._claim_due()
                        total += len(claims)
                        more = len(claims) == self.batch_size
                        in_flight.update(self._pool.submit(self._process_safely, c) for c in claims)
                    if not in_flight:
                        break
                    # Until every send is done, or RECORD_EVERY has passed (a claimed batch
                    # lasts the senders longer than that): then claim again if there is room.
                    _, in_flight = wait(in_flight, RECORD_EVERY, return_when=ALL_COMPLETED)
            finally:
                wait(in_flight)
                self.record_sent()  # returns once every send of this run is written
        return total

    def _claim_due(self) -> list[Claim]:
        now = self.clock()
        self.mark_missed(now)
        return self.claim(now, self.batch_size)

    def next_due(self) -> datetime | None:
        return self.ledger.claims.next_due()

    # ------------------------------------------------------------------ claiming

    def mark_missed(self, now: datetime) -> int:
        """Pending deliveries past their grace are missed: never sent late (DESIGN.md)."""
        count = self.ledger.claims.mark_missed(now)
        if count:
            log.warning("%d deliveries missed: due longer ago than their grace", count)
        return count

    def claim(self, now: datetime, limit: int) -> list[Claim]:
        """Atomically move up to `limit` due deliveries to ``sending`` under this worker."""
        if self.stopping:
            return []
        return self.ledger.claims.claim(self.worker_id, now, limit)

    # ------------------------------------------------------------------ one delivery

    def _process_safely(self, claim: Claim) -> None:
        try:
            self.process(claim)
        except Exception:
            # A bug must not leave the row in `sending` until the reconciler: put it back.
            # (Only a failure before the provider call comes here: once a send went out,
            # `_send` queues its record before anything else can raise, and a record that
            # cannot be written leaves the row to the reconciler, never to a blind resend.)
            log.exception("delivery %d: unexpected error", claim.id)
            attempts = claim.attempts + 1
            error = still_unsure(claim, "internal error; see the worker's log")
            if attempts >= self.retry.max_attempts:
                why = f"failed on {claim.channel} (internal error)"
                self._move_on(claim, "failed", why, attempts=attempts, last_error=error)
                return
            self._finish(
                claim,
                status="pending",
                attempts=attempts,
                last_error=error,
                next_attempt_at=self.clock() + self.retry.base,
            )

    def process(self, claim: Claim) -> str:
        """Decide, send and record one claimed delivery; return its new status."""
        if self.stopping:
            # Shutting down: a claim whose send has not started goes back, untouched, so a
            # stop takes one provider call at most, not a whole batch.
            return self._finish(claim, status="pending")
        now = self.clock()
        step = decide(claim, now)
        match step.action:
            case "cancel":
                return self._finish(claim, status="cancelled", last_error=step.reason)
            case "miss":
                return self._finish(claim, status="missed", last_error=step.reason)
            case "move":
                why = f"{claim.household_id}/{claim.partner_key} opted out of {claim.channel}"
                return self._move_on(claim, "cancelled", why, last_error=step.reason)
            case "wait":
                return self._finish(
                    claim, status="pending", next_attempt_at=step.until, last_error=step.reason
                )
        if claim.pulse and claim.occurrence_id is not None:
            claim = self._pulse_turn(claim, now)
        held = self._hold(claim, now)
        if held is None:
            log.warning(
                "delivery %d: not sent: the claim was reconciled while it waited for a sender",
                claim.id,
            )
            return "lost"
        return self._send(held)

    def _pulse_turn(self, claim: Claim, now: datetime) -> Claim:
        """A pulse check-in worded as its turn says: decided (from the household's ratings
        up to `now`) by the occurrence's first message, followed by every other, so both
        partners' messages say the same and never who rated what."""
        assert claim.occurrence_id is not None and claim.ritual_id is not None
        assert claim.pulse is not None
        with self.ledger.transaction() as tx:
            turn = tx.ratings.turn(claim.occurrence_id)
            if turn is None:
                by_partner = tx.ratings.by_partner(
                    claim.household_id, now - timedelta(weeks=pulse.TWELVE_WEEK), now
                )
                earlier = tx.ratings.turns_before(
                    claim.household_id,
                    claim.ritual_id,
                    now,
                    pulse.PERSIST - 1,
                    now - pulse.SUPPORT_EVERY,
                )
                turn = tx.ratings.decide(
                    occurrence=claim.occurrence_id,
                    household=claim.household_id,
                    ritual=claim.ritual_id,
                    turn=pulse.next_turn(by_partner, earlier, now),
                )
            body = pulse.worded(claim.body, claim.pulse, claim.channel, turn)
            if body == claim.body:
                return claim
            tx.claims.reword(claim, self.worker_id, now, body)
        return replace(claim, body=body)

    def _hold(self, claim: Claim, now: datetime) -> Claim | None:
        """Renew the claim just before the provider call; None if it is no longer ours.

        A claim can wait in the senders' queue past the claim timeout (a long batch, a slow
        provider); a reconciler may then have returned it to pending and another worker may
        hold it now. Sending without this check would send it twice.
        """
        if now - claim.claimed_at < self.claim_timeout / 10:
            # Too young for any reconciler (which takes claims older than the timeout) to
            # have taken, with nine tenths of the timeout left for the send: no write.
            return claim
        renewed = self.ledger.claims.renew(claim, self.worker_id, now)
        return replace(claim, claimed_at=now) if renewed else None

    def _send(self, claim: Claim) -> str:
        attempts = claim.attempts + 1
        where = (
            f"delivery {claim.id} ({claim.channel} to {claim.household_id}/{claim.partner_key}"
            + (f" {mask_address(address)})" if (address := claim.contact()) else ")")
        )
        try:
            notifier, result = self._provider_call(claim)
        except NotifierError as error:
            return self._failed(claim, error, attempts, where)
        except Exception as exc:
            # No traceback: its text may quote the address. Where it was raised is enough.
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            log.error(
                "%s: notifier raised %s at %s:%s: %s; treated as transient",
                where,
                type(exc).__name__,
                frame.filename,
                frame.lineno,
                mask_addresses(str(exc)),
            )
            return self._failed(
                claim, NotifierError(f"{type(exc).__name__}: {exc}"), attempts, where
            )
        now = self.clock()
        repeated = claim.last_error == MAY_REPEAT  # the ledger keeps saying so
        # Queued first, before anything that could raise: a send that went out is never put
        # back to pending. The recorder's thread writes it with others.
        self._recorder.put(
            Sent(
                claim,
                {
                    "status": "sent",
                    "attempts": attempts,
                    "provider_id": result.provider_id,
                    "sent_at": now,
                    "last_error": SENT_AGAIN if repeated else None,
                },
                result,
                notifier.has_receipts,
            )
        )
        try:
            log.info("%s sent (%s)", where, result.provider_id)
            SENDS.labels(channel=claim.channel, outcome="sent").inc()
            late = (now - claim.due_at).total_seconds()  # retries and quiet hours included
            LATENESS.labels(channel=claim.channel).observe(max(0.0, late))
        except Exception:
            log.exception("delivery %d: sent, but noting it in the metrics failed", claim.id)
        return "sent"

    def record_sent(self) -> int:
        """Wait until the outcomes of every send so far are written; return how many rows
        that wrote."""
        return self._recorder.flush()

    def _record(self, batch: list[Sent]) -> int:
        """Write a batch of sends that went out, in one transaction; return how many rows.

        Each row is written only if the claim is still this worker's (the same guard as
        :meth:`_finish`). A passing database error is tried again; a row the database will
        not take (a value too long, say) is written apart from the others, so it cannot take
        them down with it. What cannot be written stays in ``sending``, and the reconciler
        settles it by asking the provider: a send that went out is never returned to
        pending here.
        """
        now = self.clock()
        recorded: list[Sent] = []
        for pause in (*RECORD_RETRIES, None):
            try:
                recorded = self._write_sent(batch, now)
                break
            except Busy as exc:
                if pause is None:
                    log.error(
                        "recording %d sends failed (%s); they stay in 'sending' until the "
                        "reconciler asks the provider",
                        len(batch),
                        type(exc.orig).__name__,
                    )
                    return 0
                log.warning(
                    "recording %d sends failed (%s); trying again",
                    len(batch),
                    type(exc.orig).__name__,
                )
                time.sleep(pause)
            except Exception:
                if len(batch) == 1:
                    log.exception(
                        "delivery %d: sent, but its record was refused; it stays in 'sending' "
                        "until the reconciler asks the provider",
                        batch[0].claim.id,
                    )
                    return 0
                return sum(self._record([item]) for item in batch)
        self._after_recorded(recorded, now)
        return len(recorded)

    def _write_sent(self, batch: Sequence[Sent], now: datetime) -> list[Sent]:
        written = set(
            self.ledger.claims.record_sent(
                self.worker_id,
                now,
                [
                    SentRecord(
                        item.claim,
                        item.values["attempts"],
                        item.values["provider_id"],
                        item.values["sent_at"],
                        item.values["last_error"],
                    )
                    for item in batch
                ],
            )
        )
        for item in batch:
            if item.claim.id not in written:
                log.warning(
                    "delivery %d: outcome 'sent' not recorded: the claim was reconciled meanwhile",
                    item.claim.id,
                )
        return [item for item in batch if item.claim.id in written]

    def _after_recorded(self, items: Sequence[Sent], now: datetime) -> None:
        """Now that these messages' ids are recorded: the provider's final word on them, if
        it came first (a receipt held for that id, or a lookup that found it failed)."""
        ours = [i for i in items if i.has_receipts and i.result.provider_id]
        for item in ours:
            if item.result.status in FAILED:
                self._receipt(item, now)
        self._held_receipts([i for i in ours if i.result.status not in FAILED], now)

    def _receipt(self, item: Sent, now: datetime) -> None:
        try:
            self.ledger.receipts.record(
                channel=item.claim.channel,
                provider_id=item.result.provider_id or "",
                status=item.result.status or "",
                error_code=None,
                now=now,
            )
        except Exception:
            log.exception("delivery %d: its provider status was not recorded", item.claim.id)

    def _held_receipts(self, items: Sequence[Sent], now: datetime) -> None:
        """Receipts held for messages whose ids are recorded by now: the same pass as the
        reconciler's, each applied on its own, so one that fails does not lose the others."""
        if not items:
            return
        try:
            self.ledger.receipts.apply_matched(now)
        except Exception:
            log.exception("could not look for held provider receipts")

    def _provider_call(self, claim: Claim) -> tuple[Notifier, SendResult]:
        """The notifier's send (or its record of an unsure earlier attempt), timed."""
        notifier = self.notifiers.get(claim.channel)
        started = time.perf_counter()
        try:
            return notifier, self._already_sent(claim, notifier) or notifier.send(claim.message())
        finally:
            SEND_DURATION.labels(channel=claim.channel).observe(time.perf_counter() - started)

    def _already_sent(self, claim: Claim, notifier: Notifier) -> SendResult | None:
        """After an attempt that timed out with the request out, the provider's record of
        it, when the channel can tell; else None (send)."""
        if not (claim.last_error or "").startswith(UNSURE) or not notifier.can_tell_sent:
            return None
        try:
            found = notifier.was_sent(claim.message(), since=claim.due_at)
        except Exception as error:
            # Still unsure, whatever the lookup's own error: a transient failure that keeps
            # saying so, so the next attempt asks again (never a permanent one, which would
            # move the delivery to another channel).
            raise NotifierError(
                f"could not ask whether sent: {error or type(error).__name__}",
                retry_after=error.retry_after if isinstance(error, NotifierError) else None,
                unsure=True,
            ) from None
        if found is not None:
            log.info("delivery %d: the provider had the timed-out attempt", claim.id)
        return found

    def _failed(self, claim: Claim, original: NotifierError, attempts: int, where: str) -> str:
        now = self.clock()
        # A provider's error text may quote the number or address: never log or store it.
        failure = after_failure(
            original, mask_addresses(str(original)), attempts, self.retry.max_attempts
        )
        error = failure.error
        if failure.kind == "opted_out":
            log.warning("%s: recipient opted out (%s)", where, error)
        elif failure.kind == "permanent":
            log.warning("%s: permanent failure: %s", where, error)
        elif failure.kind == "gave_up":
            log.warning("%s: giving up after %d attempts: %s", where, attempts, error)
        if failure.falls_back:
            SENDS.labels(channel=claim.channel, outcome=failure.kind).inc()
            return self._move_on(
                claim,
                "failed",
                f"failed on {claim.channel}",
                opted_out=failure.kind == "opted_out",
                attempts=attempts,
                last_error=error,
            )
        SENDS.labels(channel=claim.channel, outcome="transient").inc()
        with self._rng_lock:
            delay = self.retry.delay(attempts, self._rng, original.retry_after)
        # Our own settings (a wrong token, an unknown sender) fail every send until fixed.
        log.log(
            logging.ERROR if original.config else logging.INFO,
            "%s: transient failure (%s); retry in %.0f s",
            where,
            error,
            delay.total_seconds(),
        )
        return self._finish(
            claim,
            status="pending",
            attempts=attempts,
            next_attempt_at=now + delay,
            last_error=error,
        )

    def _finish(self, claim: Claim, *, status: str, **values: Any) -> str:
        """Record the outcome, if the claim is still ours (a reconciler may have taken it)."""
        now = self.clock()
        if status != "sending":
            values.update(claimed_by=None)
        written = self._retrying(
            claim,
            status,
            lambda: self.ledger.claims.finish(
                claim, self.worker_id, now, {"status": status, **values}
            ),
        )
        if not written:
            self._not_recorded(claim, status)
        return status

    def _move_on(
        self, claim: Claim, status: str, why: str, *, opted_out: bool = False, **values: Any
    ) -> str:
        """Settle the claim as `status` and move its message to the partner's next channel,
        in one transaction (with the opt-out, when the provider said so): a crash leaves
        either neither, the claim in `sending` for the reconciler, or both."""
        now = self.clock()

        def write() -> MoveOn:
            with self.ledger.transaction() as tx:
                if opted_out:
                    tx.partners.record_opt_out(
                        claim.household_id, claim.partner_key, claim.channel, now
                    )
                return tx.claims.move_on(claim, self.worker_id, now, {"status": status, **values})

        moved = self._retrying(claim, status, write)
        if not moved.written:
            self._not_recorded(claim, status)
            return status
        then = f"sending by {moved.channel} instead" if moved.channel else "no other channel"
        log.info("delivery %d: %s; %s", claim.id, why, then)
        return status

    def _retrying(self, claim: Claim, status: str, write: Callable[[], _T]) -> _T:
        """`write`, tried again after a passing database error: after a send, losing its
        record would leave the row in `sending`, and a channel that cannot tell would send
        it again."""
        for pause in RECORD_RETRIES:
            try:
                return write()
            except Busy as exc:
                log.warning(
                    "delivery %d: recording %r failed (%s); trying again",
                    claim.id,
                    status,
                    type(exc.orig).__name__,
                )
                time.sleep(pause)
        return write()

    @staticmethod
    def _not_recorded(claim: Claim, status: str) -> None:
        log.warning(
            "delivery %d: outcome %r not recorded: the claim was reconciled meanwhile",
            claim.id,
            status,
        )

    # ------------------------------------------------------------------ crash recovery

    def reconcile(self, *, everything: bool = False) -> int:
        """Settle deliveries a crash left in ``sending``.

        Rows claimed longer ago than the claim timeout (or all of them, with `everything`,
        when this process is known to be the only worker, as on SQLite at start) are looked
        up with the notifier: sent -> recorded as sent; not sent, or cannot tell -> pending.
        """
        now = self.clock()
        settled = 0
        for claim in self.ledger.claims.stale(now, None if everything else self.claim_timeout):
            try:
                settled += self._reconcile_one(claim, now)
            except Exception:
                # One row the database will not take must not keep the others in `sending`.
                log.exception("delivery %d: could not be reconciled", claim.id)
        try:
            self.ledger.receipts.apply_matched(now)
        except Exception:
            log.exception("held provider receipts were not looked at")
        return settled

    def _reconcile_one(self, claim: Claim, now: datetime) -> int:
        where = f"delivery {claim.id} (interrupted while sending)"
        found: SendResult | None = None
        can_tell = False
        try:
            notifier = self.notifiers.get(claim.channel)
            can_tell = notifier.can_tell_sent
            # Since the due time, not this claim: an earlier attempt that timed out may be the
            # one the provider has.
            found = notifier.was_sent(claim.message(), since=claim.due_at)
        except Exception as exc:
            error = mask_addresses(str(exc)) or type(exc).__name__
            log.warning("%s: could not ask the provider (%s); returned to pending", where, error)
            if can_tell:  # ask again before sending, rather than send blind
                return self._settle(
                    claim,
                    now,
                    status="pending",
                    next_attempt_at=now,
                    last_error=f"{UNSURE}interrupted while sending; could not ask: {error}",
                )
        values: dict[str, Any]
        if found is not None:
            values = {
                "status": "sent",
                "provider_id": found.provider_id,
                "sent_at": claim.claimed_at,
                "attempts": claim.attempts + 1,
                "last_error": None,
            }
            log.info("%s: the provider has it; recorded as sent", where)
        else:
            values = {
                "status": "pending",
                "next_attempt_at": now,
                "last_error": "interrupted while sending; the provider has no record"
                if can_tell
                else MAY_REPEAT,
            }
            if not can_tell:
                log.warning(
                    "%s: %s cannot tell if it was sent; sending again", where, claim.channel
                )
        settled = self._settle(claim, now, **values)
        if found is not None and settled:
            self._after_recorded([Sent(claim, values, found, notifier.has_receipts)], now)
        return settled

    def _settle(self, claim: Claim, now: datetime, **values: Any) -> int:
        """Record a reconciled claim's outcome, whoever holds it."""
        return int(self.ledger.claims.finish(claim, None, now, {"claimed_by": None, **values}))
