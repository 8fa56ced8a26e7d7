"""The asyncio scheduler library's README example, run on a toolfan fleet.

Unchanged apart from two lines: the import (it was the library's
``Scheduler`` and ``Task``) and the URL of the fleet (the library ran its
tasks in this process). The tasks name tools the fleet serves: here
toolfan-worker's built-in ``echo`` and ``sleep``.
"""

import asyncio
import os

from toolfan import Scheduler, Task  # the only changed import

URL = os.environ.get("TOOLFAN_NATS_URL", "nats://127.0.0.1:4222")  # the added URL


async def main():
    scheduler = Scheduler(max_concurrency=8, url=URL)
    results = await scheduler.run([
        Task("echo", {"text": "hello"}),
        Task("sleep", {"ms": 200}, timeout=1.0, retries=2),
        Task("sleep", {"ms": 5000}, timeout=0.5),
    ] + [Task("sleep", {"ms": 100}) for _ in range(8)])
    for result in results:
        if result.ok:
            print(f"ok     {result.value} in {result.duration_s:.2f}s")
        else:
            print(f"failed {result.error} in {result.duration_s:.2f}s")


if __name__ == "__main__":
    asyncio.run(main())
