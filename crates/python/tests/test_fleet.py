"""Python workers as a fleet: three worker processes under one fleet-wide
limit (set with `toolfan limits set` in the test's Redis), and a worker
draining on SIGTERM."""

import asyncio
import time

import toolfan
from support import max_in_window


async def test_a_fleet_limit_of_10_per_s_holds_over_5_s_with_three_python_workers(fleet):
    fleet.toolfan("limits", "set", "pyrate", "10/s", "--burst", "1",
                  "--redis-url", fleet.redis_url)
    ids = ["py-l1", "py-l2", "py-l3"]
    workers = [fleet.python_worker(i, "16") for i in ids]
    try:
        await fleet.wait_for_workers(ids)
        client = await toolfan.Client.connect(fleet.nats_url, caller="py-limit")
        started = time.monotonic()
        results = await asyncio.wait_for(client.fanout(
            [toolfan.Task("pyrated", {"i": i}) for i in range(60)]), 40)
        took = time.monotonic() - started
    finally:
        for worker in workers:
            worker.stop()
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    starts = sorted(r.value["started"] for r in results)
    most = max_in_window(starts, 1.0)
    span = starts[-1] - starts[0]
    print(f"60 calls at 10/s through 3 Python workers: {took:.2f} s, "
          f"most {most} in 1 s, starts over {span:.2f} s")
    assert {r.worker for r in results} == set(ids)
    # 10/s with a burst of 1: at most 11 in any second; 60 calls need 5.9 s.
    assert most <= 11, f"{most} starts in one second under a 10/s limit"
    assert span >= 5.0, f"60 calls at 10/s started within {span:.2f} s"
    assert took < 20


async def test_sigterm_drains_the_running_tasks(fleet):
    worker = fleet.python_worker("py-drain", "8")
    await fleet.wait_for_workers(["py-drain"])
    client = await toolfan.Client.connect(fleet.nats_url, caller="py-drain")
    try:
        job = await client.submit([toolfan.Task("pyslow", {"s": 1.5}) for _ in range(3)])
        await asyncio.sleep(0.6)
        worker.terminate()
        results = await asyncio.wait_for(job.results(), 15)
        assert [r.value for r in results] == ["done"] * 3
        assert {r.worker for r in results} == {"py-drain"}
        code = await asyncio.get_running_loop().run_in_executor(
            None, lambda: worker.process.wait(timeout=10))
        assert code == 0
    finally:
        worker.stop()
