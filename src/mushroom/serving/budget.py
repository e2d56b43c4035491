"""Bounds on what all requests together may hold at once: pixels being decoded, upload bytes in memory.

Each upload is bounded on its own (bytes, megapixels), but a few allowed ones at once can still take
gigabytes and every core; a good photo sent meanwhile must not wait behind them for seconds.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
from collections.abc import AsyncIterator, Callable
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
        self._waiters = 0

    @asynccontextmanager
    async def hold(self, amount: float) -> AsyncIterator[None]:
        """Wait (at most ``wait_s``) until ``amount`` is free and hold it; 503 ``busy`` if it never is."""
        amount = min(amount, self.capacity)
        if self.free >= amount:  # the usual case, without a lock or a timer: no await, no task
            self.free -= amount
        else:
            await self._wait_and_take(amount)
        try:
            yield
        finally:
            self.free += amount
            if self._waiters:
                async with self._changed:
                    self._changed.notify_all()

    async def _wait_and_take(self, amount: float) -> None:
        self._waiters += 1
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.free >= amount), self.wait_s)
                self.free -= amount
        except TimeoutError:
            raise self.busy() from None
        finally:
            self._waiters -= 1

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


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to give back this way
        return None


def give_back_free_memory() -> None:
    """Return memory freed after a large decode to the system.

    glibc keeps freed memory in per-thread arenas: after a few 64-megapixel uploads decoded in different
    worker threads, the service held a gigabyte it no longer used, and the next large upload added to it.
    Called only after large images (it takes a millisecond or two), so photos pay nothing.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
