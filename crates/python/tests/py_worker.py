"""A worker process serving Python tools through toolfan.Worker, for the
tests: ``py_worker.py NATS_URL REDIS_URL WORKER_ID [CONCURRENCY]``.
Exits 0 after a SIGTERM once its running tasks have drained."""

import asyncio
import sys
import time
from pathlib import Path

import toolfan

nats_url, redis_url, worker_id = sys.argv[1:4]
concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 16

worker = toolfan.Worker(
    nats_url=nats_url,
    redis_url=redis_url,
    concurrency=concurrency,
    id=worker_id,
    limit_keys={"pyrated": ["pyrate"]},
)


@worker.tool("pyupper", description="Upper-cases a text.")
async def upper(args: dict) -> str:
    return args["text"].upper()


@worker.tool("pyfail")
async def fail(args: dict) -> str:
    raise ValueError(f"cannot take {args['text']!r}")


@worker.tool("pyflaky")
async def flaky(args: dict, ctx: toolfan.TaskContext) -> dict:
    if ctx.attempt < args["succeed_on"]:
        raise toolfan.ToolError.retryable(f"attempt {ctx.attempt} fails")
    return {"attempt": ctx.attempt, "worker": ctx.worker}


@worker.tool("pyblock")
def block(args: dict) -> str:
    """A sync tool that blocks its thread."""
    time.sleep(args["s"])
    return "woke"


@worker.tool("pyslow")
async def slow(args: dict) -> str:
    try:
        await asyncio.sleep(args["s"])
    except asyncio.CancelledError:
        if "marker" in args:
            Path(args["marker"]).write_text("cancelled")
        raise
    return "done"


@worker.tool("pyrated")
async def rated(args: dict, ctx: toolfan.TaskContext) -> dict:
    return {"started": time.time(), "worker": ctx.worker}


@worker.batch_tool("pybatch", max_size=8, max_wait=0.05)
async def double(batch: list) -> list:
    return [toolfan.ToolError(f"{a['x']} is odd") if a["x"] % 2 else {"double": a["x"] * 2, "batch": len(batch)}
            for a in batch]


asyncio.run(worker.run())
