"""Python worker → Rust caller: tests/py_worker.py's tools (served by the
Rust worker through toolfan.Worker) called with `toolfan submit` and
toolfan.Client."""

import asyncio
import json
import time

import pytest

import toolfan


@pytest.fixture(scope="module")
def py_worker(fleet):
    worker = fleet.python_worker("py-w1", "8")
    asyncio.run(fleet.wait_for_workers(["py-w1"]))
    yield "py-w1"
    worker.stop()


def submit(fleet, tasks, caller):
    """`toolfan submit` of a job of ``tasks``; its results."""
    job = json.dumps({"tasks": tasks, "deadline_ms": 20000})
    out = fleet.toolfan("submit", "--nats-url", fleet.nats_url, "--caller", caller,
                        "--compact", stdin=job)
    return json.loads(out)


def test_a_python_tools_results_arrive_with_its_worker_id(fleet, py_worker):
    results = submit(fleet, [{"tool": "pyupper", "args": {"text": f"t{i}"}} for i in range(5)],
                     "cli-py-ids")
    assert [r["value"] for r in results] == [f"T{i}" for i in range(5)]
    assert {r["worker"] for r in results} == {py_worker}


def test_its_exception_arrives_as_tool_error_with_the_message(fleet, py_worker):
    [result] = submit(fleet, [{"tool": "pyfail", "args": {"text": "xyz"}}], "cli-py-fail")
    assert result["ok"] is False
    assert result["error"]["kind"] == "tool_error"
    assert result["error"]["message"] == "ValueError: cannot take 'xyz'"
    assert result["error"]["retryable"] is False


async def test_a_retryable_tool_error_is_retried_on_another_attempt(fleet, py_worker):
    client = await toolfan.Client.connect(fleet.nats_url, caller="py-retry")
    once, never = await asyncio.wait_for(client.fanout([
        toolfan.Task("pyflaky", {"succeed_on": 3}, retries=3),
        toolfan.Task("pyflaky", {"succeed_on": 9}, retries=1),
    ]), 20)
    assert once.ok and once.value == {"attempt": 3, "worker": py_worker}, once
    assert once.attempts == 3
    assert not never.ok and never.error.kind == "tool_error" and never.error.retryable
    assert never.error.message == "attempt 2 fails" and never.attempts == 2


async def test_a_blocking_tool_does_not_stall_the_others(fleet, py_worker):
    client = await toolfan.Client.connect(fleet.nats_url, caller="py-block")
    tasks = [toolfan.Task("pyblock", {"s": 1.5}) for _ in range(3)]
    tasks += [toolfan.Task("pyupper", {"text": "a"}) for _ in range(10)]
    started = time.monotonic()
    job = await client.submit(tasks, max_concurrency=13)
    arrived = {}
    async def follow():
        async for event in job.events():
            arrived[event.index] = time.monotonic() - started
    await asyncio.wait_for(follow(), 15)
    quick = [arrived[i] for i in range(3, 13)]
    slow = [arrived[i] for i in range(3)]
    # Ten quick calls through 5 slots left by three blocked threads (of 8).
    assert max(quick) < 1.2, f"quick calls waited for the blocking ones: {quick}"
    # The three blocking calls ran at once, each in its own thread.
    assert 1.4 <= min(slow) and max(slow) < 2.8, slow


async def test_cancellation_reaches_the_coroutine_as_cancelled_error(fleet, py_worker, tmp_path):
    client = await toolfan.Client.connect(fleet.nats_url, caller="py-cancelled")
    by_timeout, by_cancel = tmp_path / "timeout", tmp_path / "cancel"
    [result] = await asyncio.wait_for(client.fanout([
        toolfan.Task("pyslow", {"s": 10, "marker": str(by_timeout)}, timeout=0.5),
    ]), 10)
    assert result.error.kind == "timeout"
    job = await client.submit([toolfan.Task("pyslow", {"s": 10, "marker": str(by_cancel)})])
    await asyncio.sleep(0.5)
    await job.cancel()
    [result] = await asyncio.wait_for(job.results(), 10)
    assert result.error.kind == "cancelled"
    deadline = time.monotonic() + 3
    while not (by_timeout.exists() and by_cancel.exists()):
        assert time.monotonic() < deadline, "the coroutine never saw CancelledError"
        await asyncio.sleep(0.05)
    assert by_timeout.read_text() == by_cancel.read_text() == "cancelled"


async def test_a_batch_tool_gets_calls_together_each_its_own_outcome(fleet, py_worker):
    client = await toolfan.Client.connect(fleet.nats_url, caller="py-batch")
    results = await asyncio.wait_for(
        client.fanout([toolfan.Task("pybatch", {"x": x}) for x in range(8)]), 10)
    for x, r in enumerate(results):
        if x % 2:
            assert r.error.kind == "tool_error" and r.error.message == f"{x} is odd"
        else:
            assert r.value["double"] == 2 * x
    assert max(r.value["batch"] for r in results if r.ok) > 1, "no two calls were batched"
