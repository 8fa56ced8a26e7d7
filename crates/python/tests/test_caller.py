"""Python caller → Rust worker: the toolfan-worker binary's built-in tools
called through toolfan.Client (the Rust client underneath)."""

import asyncio
import time

import pytest

import toolfan


async def connect(fleet, caller):
    return await toolfan.Client.connect(fleet.nats_url, caller=caller)


async def test_fifty_100ms_sleeps_come_back_in_input_order_well_under_a_second(fleet):
    client = await connect(fleet, "py-order")
    # Slightly different lengths, so completion order is not input order.
    lengths = [100 + (i * 7) % 10 for i in range(50)]
    tasks = [toolfan.Task("sleep", {"ms": ms}, timeout=5.0) for ms in lengths]
    started = time.monotonic()
    results = await asyncio.wait_for(client.fanout(tasks), 10)
    took = time.monotonic() - started
    assert [r.index for r in results] == list(range(50))
    assert [r.value for r in results] == [{"slept_ms": ms} for ms in lengths]
    assert all(r.ok and r.error is None and r.worker == fleet.RUST_WORKER for r in results)
    assert all(0.09 <= r.duration_s < 1.0 for r in results), [r.duration_s for r in results]
    print(f"50 x 100 ms sleeps from Python: {took:.3f} s")
    assert took < 1.0, f"50 parallel 100 ms sleeps took {took:.3f} s"


async def test_a_failing_and_a_timing_out_task_each_give_their_own_error(fleet):
    client = await connect(fleet, "py-errors")
    results = await asyncio.wait_for(client.fanout([
        toolfan.Task("fail", {"message": "boom"}),
        toolfan.Task("sleep", {"ms": 3000}, timeout=0.3),
        toolfan.Task("echo", {"text": "fine"}),
    ]), 10)
    failed, timed_out, fine = results
    assert not failed.ok and failed.error.kind == "tool_error"
    assert failed.error.message == "boom"
    assert not timed_out.ok and timed_out.error.kind == "timeout", timed_out
    assert 0.25 <= timed_out.duration_s < 1.5
    assert fine.ok and fine.value == {"text": "fine"}


async def test_first_ok_cancels_the_rest(fleet):
    client = await connect(fleet, "py-first-ok")
    tasks = [toolfan.Task("sleep", {"ms": 50})] + [
        toolfan.Task("sleep", {"ms": 8000}) for _ in range(4)
    ]
    started = time.monotonic()
    job = await client.submit(tasks, max_concurrency=5, deadline=20.0, policy="first_ok")
    results, summary = await asyncio.wait_for(job.wait(), 10)
    took = time.monotonic() - started
    assert results[0].ok and results[0].value == {"slept_ms": 50}
    assert [r.error.kind for r in results[1:]] == ["cancelled"] * 4
    assert summary["ended_by"] == "policy", summary
    assert took < 3.0, f"first_ok took {took:.2f} s with 8 s tasks still running"


async def in_flight(client, worker_id):
    workers = await client.workers(0.3)
    return next(w["in_flight"] for w in workers if w["id"] == worker_id)


async def test_cancelling_a_job_aborts_its_running_tasks(fleet):
    client = await connect(fleet, "py-cancel")
    job = await client.submit([toolfan.Task("sleep", {"ms": 20000}) for _ in range(4)],
                              deadline=30.0)
    deadline = time.monotonic() + 5
    while await in_flight(client, fleet.RUST_WORKER) < 4:
        assert time.monotonic() < deadline, "the tasks never started"
    started = time.monotonic()
    await job.cancel()
    results = await asyncio.wait_for(job.results(), 10)
    took = time.monotonic() - started
    assert [r.error.kind for r in results] == ["cancelled"] * 4
    assert took < 3.0, f"the cancel took {took:.2f} s"
    # The worker stopped running them (its heartbeat says so within a second or two).
    deadline = time.monotonic() + 5
    while await in_flight(client, fleet.RUST_WORKER) > 0:
        assert time.monotonic() < deadline, "the cancelled tasks still run on the worker"


async def test_events_come_in_completion_order_each_once(fleet):
    client = await connect(fleet, "py-events")
    job = await client.submit([toolfan.Task("sleep", {"ms": ms}) for ms in (600, 100, 350)])
    order = []

    async def follow():
        async for event in job.events():
            order.append(event.index)
            assert event.result.ok and event.total == 3 and event.finished == len(order)

    await asyncio.wait_for(follow(), 10)
    assert order == [1, 2, 0]


async def test_tools_and_the_openai_adapter(fleet):
    client = await connect(fleet, "py-llm")
    tools = {t["name"]: t for t in await asyncio.wait_for(client.tools(), 10)}
    assert {"sleep", "echo", "fail"} <= set(tools)
    assert tools["sleep"]["parameters"]["type"] == "object"
    messages = await asyncio.wait_for(client.answer_openai([
        {"id": "call_1", "type": "function",
         "function": {"name": "echo", "arguments": "{\"q\": \"rust\"}"}},
    ]), 10)
    assert messages == [{"role": "tool", "tool_call_id": "call_1", "content": "{\"q\":\"rust\"}"}]
    blocks = await asyncio.wait_for(client.answer_anthropic([
        {"type": "tool_use", "id": "tu_1", "name": "fail", "input": {"message": "no"}},
    ]), 10)
    assert blocks[0]["tool_use_id"] == "tu_1" and blocks[0]["is_error"] is True


async def test_bad_input_names_the_field(fleet):
    client = await connect(fleet, "py-bad")
    with pytest.raises(TypeError, match=r"tasks\[1\]"):
        await client.fanout([toolfan.Task("echo"), {"tool": "echo"}])
    with pytest.raises(ValueError, match="policy"):
        await client.submit([toolfan.Task("echo")], policy="most")
    with pytest.raises(ValueError, match="deadline"):
        await client.submit([toolfan.Task("echo")], deadline=float("nan"))
    with pytest.raises(TypeError, match="Task args"):
        toolfan.Task("echo", {"x": object()})
    with pytest.raises(ValueError, match="caller"):
        await toolfan.Client.connect(fleet.nats_url, caller="not a caller")
