"""A toolfan worker written from docs/protocol.md alone, with nats-py and
redis-py: it serves one tool, takes the fleet's limits through the
documented Redis scripts, and answers each task with when it started.

Usage: worker.py NATS_URL REDIS_URL TOOL WORKER_ID LIMIT_KEY[,LIMIT_KEY...]

Used by tests/foreign.rs to check the limits contract from an
implementation nobody wrote in Rust. It stops when its stdin closes.
"""

import asyncio
import json
import os
import random
import socket
import sys
import time

import nats
import redis.asyncio as redis
from nats.js.api import AckPolicy, ConsumerConfig

LUA = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "limits", "lua")
LEASE_TTL_MS = 10_000


class Limits:
    """The documented contract: find the defined limits, take them all in
    one acquire.lua call, renew leases while running, ZREM them after."""

    def __init__(self, client, tool_keys):
        self.redis = client
        self.tool_keys = tool_keys
        with open(os.path.join(LUA, "acquire.lua")) as f:
            self.acquire_script = client.register_script(f.read())
        with open(os.path.join(LUA, "renew.lua")) as f:
            self.renew_script = client.register_script(f.read())

    async def defined(self, rate_key):
        keys = self.tool_keys + ["global"] + ([rate_key] if rate_key else [])
        found = []
        for key in keys:
            raw = await self.redis.hget("toolfan:limits", key)
            if raw is not None:
                found.append((key, json.loads(raw)))
        return found

    async def take(self, limits, cost, member, deadline_ms):
        rated = [(k, d) for k, d in limits if "rate" in d]
        capped = [(k, d) for k, d in limits if "concurrency" in d]
        keys = [f"toolfan:gcra:{k}" for k, _ in rated] + [f"toolfan:lease:{k}" for k, _ in capped]
        # The rates' adaptive state: a rate cut after a backend's "too many" applies here too.
        keys += [f"toolfan:adapt:{k}" for k, _ in rated]
        args = [len(rated), len(capped), cost, member, LEASE_TTL_MS]
        for _, d in rated:
            rate = d["rate"]
            args += [rate["period_ms"] * 1000 / rate["count"], d.get("burst", 1)]
        args += [d["concurrency"] for _, d in capped]
        while True:
            reply = await self.acquire_script(keys=keys, args=args)
            if reply[0] == 1:
                return [f"toolfan:lease:{k}" for k, _ in capped]
            wait_s = reply[1] / 1e6 * (1 + random.random() * 0.1)
            if time.time() * 1000 + wait_s * 1000 > deadline_ms:
                return None
            await asyncio.sleep(wait_s)

    async def give_back(self, leases, member):
        for key in leases:
            await self.redis.zrem(key, member)


async def heartbeat(nc, worker_id, tool, stop):
    info = {"v": 1, "id": worker_id, "host": socket.gethostname(), "tools": [tool],
            "concurrency": 16, "in_flight": 0, "leaving": False}
    pings = await nc.subscribe("toolfan.worker.ping")
    while not stop.is_set():
        await nc.publish("toolfan.worker.heartbeat", json.dumps(info).encode())
        try:
            await pings.next_msg(timeout=1.0)
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            pass


async def run_task(js, limits, worker_id, msg):
    task = json.loads(msg.data)
    attempt = msg.metadata.num_delivered
    job, index = task["job"], task["index"]
    member = f"{worker_id}:{job}.{index}.{attempt}"
    spec = task["task"]
    defined = await limits.defined(spec.get("rate_key"))
    leases = []
    if defined:
        leases = await limits.take(defined, spec.get("cost", 1), member, task["deadline_unix_ms"])
    if leases is None:
        result = {"index": index, "ok": False, "attempts": attempt, "worker": worker_id,
                  "error": {"kind": "rate_limited", "message": "not admitted by the deadline"}}
    else:
        started = int(time.time() * 1000)
        result = {"index": index, "ok": True, "attempts": attempt, "worker": worker_id,
                  "value": {"started_ms": started, "args": spec["args"]}}
        await limits.give_back(leases, member)
    # A re-dispatch (`dispatch` n >= 2, the coordinator's safety net) has
    # result ids of its own, so its result is not dropped as a duplicate.
    dispatch = task.get("dispatch", 1)
    msg_id = f"{job}.{index}.{attempt}" if dispatch <= 1 else f"{job}.{index}.d{dispatch}.{attempt}"
    await js.publish(f"toolfan.result.{job}", json.dumps(result).encode(),
                     headers={"Nats-Msg-Id": msg_id})
    await msg.ack()


async def main():
    nats_url, redis_url, tool, worker_id, keys = sys.argv[1:6]
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    limits = Limits(redis.from_url(redis_url), keys.split(","))
    config = ConsumerConfig(durable_name=f"tool_{tool}", filter_subject=f"toolfan.task.{tool}",
                            ack_policy=AckPolicy.EXPLICIT, ack_wait=10)
    sub = await js.pull_subscribe(f"toolfan.task.{tool}", durable=f"tool_{tool}",
                                  stream="TOOLFAN_TASKS", config=config)
    stop = asyncio.Event()
    beats = asyncio.create_task(heartbeat(nc, worker_id, tool, stop))
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    running = set()
    while not stdin_closed.done():
        try:
            batch = await sub.fetch(8, timeout=1)
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            continue
        for msg in batch:
            t = asyncio.create_task(run_task(js, limits, worker_id, msg))
            running.add(t)
            t.add_done_callback(running.discard)
    stop.set()
    await beats
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main())
