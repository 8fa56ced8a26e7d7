"""Scheduler: the in-process asyncio scheduler's API, run on the fleet.

``await Scheduler(max_concurrency=8).run([Task(...), ...])`` returns one
result per task in input order, each with ``.ok``, ``.value``, ``.error``
and ``.duration_s``, as the scheduler library's does; its users move over
by changing the import and giving the fleet's URL (``url=`` or
``TOOLFAN_NATS_URL``). The tasks run as one toolfan job: ``max_concurrency``
is its window, ``deadline`` its deadline.
"""

import os
from typing import AsyncIterator, Iterable, List, Optional

from ._native import Client, Job, Task, TaskResult

DEFAULT_URL = "nats://127.0.0.1:4222"


class Scheduler:
    """Runs batches of tasks on the fleet, at most ``max_concurrency`` at once."""

    def __init__(
        self,
        max_concurrency: int = 8,
        *,
        url: Optional[str] = None,
        caller: str = "scheduler",
        deadline: float = 30.0,
        policy: str = "all",
        client: Optional[Client] = None,
    ) -> None:
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a positive int, not {max_concurrency!r}")
        self.max_concurrency = max_concurrency
        self.url = url or os.environ.get("TOOLFAN_NATS_URL", DEFAULT_URL)
        self.caller = caller
        self.deadline = deadline
        self.policy = policy
        self._client = client

    async def _connected(self) -> Client:
        if self._client is None:
            self._client = await Client.connect(self.url, caller=self.caller)
        return self._client

    async def _submit(self, tasks: Iterable[Task]) -> Job:
        client = await self._connected()
        return await client.submit(
            list(tasks),
            max_concurrency=self.max_concurrency,
            deadline=self.deadline,
            policy=self.policy,
        )

    async def run(self, tasks: Iterable[Task]) -> List[TaskResult]:
        """Runs ``tasks``; one result per task, in input order."""
        job = await self._submit(tasks)
        return await job.results()

    async def stream(self, tasks: Iterable[Task]) -> AsyncIterator[TaskResult]:
        """Runs ``tasks``; each result as it finishes, in completion order."""
        job = await self._submit(tasks)
        async for event in job.events():
            yield event.result

    async def close(self) -> None:
        """Closes the connection, if one was made."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def __aenter__(self) -> "Scheduler":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
