"""How long a transient failure waits before the next attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits up to base * 2**(n-1), capped."""

    max_attempts: int = 5
    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)

    def delay(self, attempts: int, rng: random.Random, retry_after: float | None) -> timedelta:
        ceiling = min(self.cap, self.base * (2 ** max(attempts - 1, 0)))
        # Half fixed, half random ("equal jitter"): spreads a burst of retries out without
        # ever retrying at once.
        wait_for = ceiling / 2 + ceiling / 2 * rng.random()
        if retry_after is not None:
            wait_for = max(wait_for, timedelta(seconds=retry_after))
        return timedelta(seconds=wait_for.total_seconds())
