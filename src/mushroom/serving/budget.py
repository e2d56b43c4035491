"""Bounds on what all requests together may hold at once: pixels being decoded, upload bytes in memory.

Each upload is bounded on its own (bytes, megapixels), but a few allowed ones at once can still take
gigabytes and every core; a good photo sent meanwhile must not wait behind them for seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mushroom.serving.uploads import UploadError


class Budget:
    """A weighted semaphore for the event loop: at most ``capacity`` units held at once.

    Waiters are not queued in order: whoever fits in what is free goes first, so a small photo passes
    several large ones that wait for room. Holding more than ``capacity`` counts as holding all of it.
    """

    def __init__(self, capacity: float, wait_s: float, what: str) -> None:
        self.capacity = capacity
        self.free = capacity
        self.wait_s = wait_s
        self.what = what
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, amount: float) -> AsyncIterator[None]:
        """Wait (at most ``wait_s``) until ``amount`` is free and hold it; 503 ``busy`` if it never is."""
        amount = min(amount, self.capacity)
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.free >= amount), self.wait_s)
            except TimeoutError:
                raise self.busy() from None
            self.free -= amount
        try:
            yield
        finally:
            async with self._changed:
                self.free += amount
                self._changed.notify_all()

    def take_now(self, amount: float) -> None:
        """Take ``amount`` without waiting, or 503 ``busy`` (for bytes already arriving on a connection)."""
        if amount > self.free:
            raise self.busy()
        self.free -= amount

    def give_back(self, amount: float) -> None:
        self.free += amount

    def busy(self) -> UploadError:
        return UploadError(
            503, "busy", f"The service is busy ({self.what}). Send the photo again in a few seconds."
        )
