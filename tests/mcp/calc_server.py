"""An MCP server for toolfan's MCP tests (tests/mcp_source.rs), on the official
MCP Python SDK's MCPServer (FastMCP in mcp 1.x).

    calc_server.py stdio
    calc_server.py http PORT

Tools: `add` (fast), `slow` (300 ms), `fail` (isError with a message),
`die` (the process exits mid-call), `crash_once` (exits on its first call
for a marker file, succeeds once the marker exists), `odd.name` (a name that
is not a safe token), `structured` (a result with structuredContent),
`stamp` (when it ran), `pid` (the server's process id), `token` (the X-Calc-Token header
it got over HTTP), `hang` (waits 30 s, writing a marker file when
cancelled), `grow` (adds a tool and says the list changed), `describe_add` (gives
`add` a new description and says so) and `drop_add` (removes `add` and
says so).
"""

import asyncio
import os
import sys
import time

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("calc", log_level="WARNING")


@server.tool(description="Adds two integers.")
def add(a: int, b: int) -> str:
    return str(a + b)


@server.tool(description="Waits 300 ms, then answers.")
async def slow(i: int = 0) -> str:
    await asyncio.sleep(0.3)
    return f"slow {i}"


@server.tool(description="Always fails.")
def fail(message: str = "it failed") -> str:
    raise ToolError(message)


@server.tool(description="Kills the server mid-call.")
def die() -> str:
    os._exit(3)


@server.tool(description="Exits on its first call for `marker`, then succeeds.")
def crash_once(marker: str) -> str:
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("crashed")
        os._exit(4)
    return f"survived, pid {os.getpid()}"


@server.tool(name="odd.name", description="A tool whose name is not a safe token.")
def odd() -> str:
    return "odd"


@server.tool(description="Returns structured content.", structured_output=True)
def structured(x: int) -> dict[str, int]:
    return {"x": x, "double": 2 * x}


@server.tool(description="Says when it ran (µs since the Unix epoch).", structured_output=True)
def stamp() -> dict[str, int]:
    return {"at_us": time.time_ns() // 1000}


@server.tool(description="Adds a tool `grown` and says the tool list changed.")
async def grow(ctx: Context) -> str:
    @server.tool(name="grown", description="A tool added after start.")
    def grown() -> str:
        return "grown"

    await ctx.session.send_tool_list_changed()
    return "grew"


@server.tool(description="Says the server's process id.")
def pid() -> int:
    return os.getpid()


@server.tool(description="Says the request's X-Calc-Token header (HTTP only).")
def token(ctx: Context) -> str:
    headers = ctx.headers or {}
    return headers.get("x-calc-token", "none")


@server.tool(description="Waits 30 s; writes `marker` when it stops early (cancelled).")
async def hang(marker: str) -> str:
    try:
        await asyncio.sleep(30)
    finally:
        with open(marker, "w") as f:
            f.write("stopped")
    return "woke"


@server.tool(description="Gives `add` a new description and says the tool list changed.")
async def describe_add(text: str, ctx: Context) -> str:
    server._tool_manager.get_tool("add").description = text
    await ctx.session.send_tool_list_changed()
    return "described"


@server.tool(description="Removes the tool `add` and says the tool list changed.")
async def drop_add(ctx: Context) -> str:
    server.remove_tool("add")
    await ctx.session.send_tool_list_changed()
    return "dropped"


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "stdio":
        server.run("stdio")
    elif mode == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        sys.exit(f"unknown mode {mode!r}: stdio or http PORT")


if __name__ == "__main__":
    main()
