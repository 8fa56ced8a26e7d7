"""The Scheduler facade: the scheduler library's README example
(examples/scheduler.py) runs unchanged apart from the import and the URL."""

import os
import subprocess
import sys
import time
from pathlib import Path

import toolfan

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "scheduler.py"


def test_the_readme_example_runs_on_the_fleet(fleet):
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                          env={**os.environ, "TOOLFAN_NATS_URL": fleet.nats_url}, timeout=30)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 11, lines
    assert lines[0].startswith("ok     {'text': 'hello'} in ")
    assert lines[1].startswith("ok     {'slept_ms': 200} in 0.2")
    assert lines[2].startswith("failed timeout: ")
    assert all(line.startswith("ok     {'slept_ms': 100} in 0.1") for line in lines[3:])
    # Eight 100 ms sleeps under max_concurrency=8 run at once; the timeout is 0.5 s.
    assert took < 10


async def test_results_have_ok_value_error_and_duration(fleet):
    async with toolfan.Scheduler(max_concurrency=2, url=fleet.nats_url) as scheduler:
        started = time.monotonic()
        results = await scheduler.run(
            [toolfan.Task("sleep", {"ms": 200}) for _ in range(4)]
            + [toolfan.Task("fail", {"message": "nope"})])
        took = time.monotonic() - started
        streamed = [r.index async for r in scheduler.stream(
            [toolfan.Task("sleep", {"ms": ms}) for ms in (300, 50)])]
    assert [r.ok for r in results] == [True] * 4 + [False]
    assert results[4].error.kind == "tool_error" and str(results[4].error) == "tool_error: nope"
    assert all(0.19 <= r.duration_s < 1.0 for r in results[:4])
    # max_concurrency=2 is the job's window: four 200 ms sleeps take two rounds.
    assert 0.4 <= took < 2.0, took
    assert streamed == [1, 0]
    assert isinstance(results[0], toolfan.Result)
