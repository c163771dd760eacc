"""asyncio front end for the durable publisher (for device apps built on asyncio).

The commit to the outbox does an fsync, so ``submit`` runs it in the loop's default executor:
the event loop never blocks on disk, and the result is durable when the await returns.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

from ..config import BrokerConfig, SyncConfig
from ..results import Result
from .mqtt import Publisher
from .outbox import Outbox

__all__ = ["AsyncPublisher"]


class AsyncPublisher:
    """``async with AsyncPublisher(outbox, broker) as pub: seq = await pub.submit(result)``."""

    def __init__(
        self,
        outbox: Outbox,
        broker: BrokerConfig,
        sync: SyncConfig | None = None,
        *,
        models: list[str] | None = None,
    ) -> None:
        self.publisher = Publisher(outbox, broker, sync, models=models)

    async def submit(self, result: Result, *, encounter: str | None = None) -> int:
        loop = asyncio.get_running_loop()
        call = functools.partial(self.publisher.submit, result, encounter=encounter)
        return await loop.run_in_executor(None, call)

    async def submit_many(
        self, results: Sequence[Result], *, encounter: str | None = None
    ) -> list[int]:
        loop = asyncio.get_running_loop()
        call = functools.partial(self.publisher.submit_many, results, encounter=encounter)
        return await loop.run_in_executor(None, call)

    async def wait_drained(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.publisher.wait_drained, timeout)

    @property
    def connected(self) -> bool:
        return self.publisher.connected

    async def __aenter__(self) -> AsyncPublisher:
        self.publisher.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.publisher.stop)
