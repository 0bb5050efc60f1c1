"""Dynamic batching for callers that score one text at a time (an API request, say).

Concurrent `submit` calls are gathered into one engine call of up to max_batch texts, or of what
arrived within max_wait of the first one, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib

from inference.engine import InferenceEngine, Prediction


class DynamicBatcher:
    def __init__(self, engine: InferenceEngine, max_batch: int = 32, max_wait_s: float = 0.01):
        self.engine = engine
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.calls = 0
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[Prediction]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> DynamicBatcher:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, text: str) -> Prediction:
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        await self._queue.put((text, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            self.calls += 1
            try:
                predictions = await self.engine.apredict([text for text, _ in batch])
            except Exception as exc:  # each waiting caller gets the failure, and the loop serves on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), prediction in zip(batch, predictions, strict=True):
                if not future.done():
                    future.set_result(prediction)
