#!/usr/bin/env python3
"""An MCP client of `toolfan mcp`, built on the official MCP Python SDK
(`mcp`), used by tests/mcp_server.rs. It runs a scenario against the
server and prints one JSON object of findings on stdout; the Rust test
asserts on them. Nothing here knows toolfan's internals.

Usage:
  client_check.py SCENARIO stdio COMMAND [ARG...]
  client_check.py SCENARIO http URL TOKEN      (TOKEN "-" for none)

Scenarios:
  basics        list the tools; call echo and fail; call nope (unknown);
                20 concurrent sleep 200 ms; cancel a sleep 10 s, then call
                echo again; a call with a progress token.
  capped        6 concurrent sleep 300 ms (the server runs with --max-calls 2).
  hangup        start a sleep 10 s call, create $MCP_READY_FILE, then wait
                to be killed (the test kills this process: a client that vanishes).
  relay         through a fleet whose worker serves tests/mcp/calc_server.py:
                list the tools; call calc_add and calc_fail; 10 concurrent
                calc_slow calls.
  list_changed  list the tools, create the file named by $MCP_READY_FILE,
                wait (15 s at most) for notifications/tools/list_changed,
                list again.
"""

import json
import os
import sys
import time

import anyio
import httpx2
import mcp.types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


def text_of(result):
    return " ".join(c.text for c in result.content if getattr(c, "type", None) == "text")


def call_finding(result):
    return {
        "is_error": bool(result.is_error),
        "text": text_of(result),
        "structured": result.structured_content,
    }


async def list_tools(session):
    listed = await session.list_tools()
    return {t.name: {"description": t.description, "input_schema": t.input_schema} for t in listed.tools}


async def concurrent_sleeps(session, n, ms):
    results = [None] * n

    async def one(i):
        results[i] = await session.call_tool("sleep", {"ms": ms})

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    took = time.monotonic() - started
    return {
        "n": n,
        "took_ms": round(took * 1000),
        "all_ok": all(r is not None and not r.is_error for r in results),
        "texts": sorted({text_of(r) for r in results if r is not None}),
    }


async def cancelled_call(session):
    """Starts sleep 10 s and abandons it after 0.5 s: the SDK sends
    notifications/cancelled for a request whose caller's scope is cancelled."""
    started = time.monotonic()
    finished = False
    with anyio.move_on_after(0.5):
        await session.call_tool("sleep", {"ms": 10_000})
        finished = True
    abandoned_after = time.monotonic() - started
    after = await session.call_tool("echo", {"after": "cancel"})
    return {
        "finished": finished,
        "abandoned_after_ms": round(abandoned_after * 1000),
        "next_call": call_finding(after),
        "next_call_ms": round((time.monotonic() - started - abandoned_after) * 1000),
    }


async def progress_call(session):
    seen = []

    async def on_progress(progress, total, message):
        seen.append({"progress": progress, "total": total, "message": message})

    result = await session.call_tool("sleep", {"ms": 100}, progress_callback=on_progress)
    return {"result": call_finding(result), "notifications": seen}


async def basics(session):
    findings = {"tools": await list_tools(session)}
    findings["echo"] = call_finding(await session.call_tool("echo", {"hello": "world", "n": 3}))
    findings["fail"] = call_finding(await session.call_tool("fail", {"message": "division by zero"}))
    findings["unknown"] = call_finding(await session.call_tool("nope", {}))
    findings["bad_name"] = call_finding(await session.call_tool("no such/tool", {}))
    findings["bad_args"] = call_finding(await session.call_tool("sleep", {"ms": "soon"}))
    findings["sleeps"] = await concurrent_sleeps(session, 20, 200)
    findings["cancel"] = await cancelled_call(session)
    findings["progress"] = await progress_call(session)
    return findings


async def list_changed(session, changed):
    findings = {"before": sorted(await list_tools(session))}
    with open(os.environ["MCP_READY_FILE"], "w") as ready:
        ready.write("connected\n")
    started = time.monotonic()
    with anyio.move_on_after(15):
        await changed.wait()
    findings["notified"] = changed.is_set()
    findings["waited_ms"] = round((time.monotonic() - started) * 1000)
    findings["after"] = sorted(await list_tools(session))
    return findings


async def relay(session):
    tools = await list_tools(session)
    added = await session.call_tool("calc_add", {"a": 2, "b": 3})
    failed = await session.call_tool("calc_fail", {"message": "no such number"})
    results = [None] * 10

    async def one(i):
        results[i] = await session.call_tool("calc_slow", {"i": i})

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(one, i)
    return {
        "tools": tools,
        "add": call_finding(added),
        "fail": call_finding(failed),
        "slow_ms": (time.monotonic() - started) * 1000,
        "slow": [call_finding(r) for r in results],
    }


async def run_session(read, write, scenario):
    changed = anyio.Event()

    async def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with ClientSession(read, write, message_handler=on_message, read_timeout_seconds=30) as session:
        init = await session.initialize()
        findings = {
            "server": init.server_info.name,
            "protocol": init.protocol_version,
            "list_changed_capability": bool(init.capabilities.tools and init.capabilities.tools.list_changed),
        }
        if scenario == "basics":
            findings.update(await basics(session))
        elif scenario == "hangup":
            async with anyio.create_task_group() as tg:
                tg.start_soon(session.call_tool, "sleep", {"ms": 10_000})
                await anyio.sleep(0.5)
                with open(os.environ["MCP_READY_FILE"], "w") as ready:
                    ready.write("calling\n")
                await anyio.sleep(30)
        elif scenario == "relay":
            findings.update(await relay(session))
        elif scenario == "capped":
            findings["sleeps"] = await concurrent_sleeps(session, 6, 300)
        else:
            findings.update(await list_changed(session, changed))
        return findings


async def main(argv):
    scenario, transport, *rest = argv
    if transport == "stdio":
        params = StdioServerParameters(command=rest[0], args=rest[1:], env=dict(os.environ))
        async with stdio_client(params) as (read, write):
            return await run_session(read, write, scenario)
    url, token = rest
    headers = {} if token == "-" else {"Authorization": f"Bearer {token}"}
    timeout = httpx2.Timeout(30, read=300)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            return await run_session(read, write, scenario)


if __name__ == "__main__":
    findings = anyio.run(main, sys.argv[1:])
    print(json.dumps(findings))
