"""Runs the fanout, throughput and limits workloads on Celery and prints JSON."""
import json
import sys
import time

from celery import group

from tasks import echo, limited, sleep


def percentile(samples, p):
    s = sorted(samples)
    rank = max(1, min(len(s), int(-(-p / 100 * len(s) // 1))))
    return s[rank - 1]


def fanout(jobs, interval):
    times = []
    for i in range(jobs + 3):
        start = time.perf_counter()
        group(sleep.s(100) for _ in range(50)).apply_async().get(interval=interval, timeout=60)
        if i >= 3:
            times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99)}


def throughput(tasks, job_size=100, in_flight=32):
    start = time.perf_counter()
    pending = []
    done = 0
    sent = 0
    while done < tasks:
        while sent < tasks and len(pending) < in_flight:
            pending.append(group(echo.s({"i": i}) for i in range(job_size)).apply_async())
            sent += job_size
        pending.pop(0).get(interval=0.001, timeout=120)
        done += job_size
    return {"tasks": tasks, "tasks_per_s": tasks / (time.perf_counter() - start)}


def limits(calls, seconds=10.0):
    """Offers `calls` rate-limited calls and counts the starts of those that
    ran within `seconds` (Celery's limiter may fall far behind)."""
    pending = group(limited.s() for _ in range(calls)).apply_async()
    time.sleep(seconds)
    starts = sorted(r.result for r in pending.results if r.ready() and r.successful())
    pending.revoke()
    if len(starts) < 2:
        return {"calls": calls, "ran": len(starts), "max_in_any_1s": len(starts), "observed_per_s": 0.0}
    most, end = 0, 0
    for i, s in enumerate(starts):
        while end < len(starts) and starts[end] < s + 1.0:
            end += 1
        most = max(most, end - i)
    return {"calls": calls, "ran": len(starts), "max_in_any_1s": most,
            "observed_per_s": len(starts) / seconds}


if __name__ == "__main__":
    scenario = sys.argv[1]
    if scenario == "fanout":
        out = {"default_poll": fanout(10, 0.5), "poll_0": fanout(int(sys.argv[2]), 0.0)}
    elif scenario == "throughput":
        out = throughput(int(sys.argv[2]))
    else:
        out = limits(int(sys.argv[2]))
    print(json.dumps(out))
