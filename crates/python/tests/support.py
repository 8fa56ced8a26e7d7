"""Real servers and toolfan binaries on free loopback ports for the tests,
each a child process ended when its fixture ends."""

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import toolfan

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("TOOLFAN_BIN_DIR", ROOT / "target" / "debug"))
HERE = Path(__file__).resolve().parent
QUIET = {**os.environ, "RUST_LOG": "warn", "TOOLFAN_METRICS_ADDR": "off"}


def binary(name: str) -> str:
    """A built toolfan binary (cargo build --workspace --bins makes them)."""
    path = BIN / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run cargo build --workspace --bins first")
    return str(path)


def server(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/local/sbin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"{name} is not installed (scripts/install-deps installs it)")


def free_port() -> int:
    """A free loopback port below the ephemeral range (as crates/testkit picks)."""
    for _ in range(200):
        port = random.randint(20000, 30000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def wait_for_port(port: int, process: subprocess.Popen, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {within} s")


class Child:
    """A child process, killed (after a SIGTERM) when stopped."""

    def __init__(self, what: str, args: List[str], env: Optional[dict] = None,
                 quiet: bool = False) -> None:
        self.what = what
        self.process = subprocess.Popen(
            args, env=env or QUIET, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL if quiet else None,
        )

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Fleet:
    """nats-server -js, redis-server, a coordinator and a Rust worker
    serving the built-in tools (sleep, echo, fail, flaky, span)."""

    RUST_WORKER = "rust-w1"

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="toolfan-py-")
        self.children: List[Child] = []
        nats_port, redis_port = free_port(), free_port()
        nats = self.spawn("nats-server", [server("nats-server"), "-js", "-a", "127.0.0.1",
                                          "-p", str(nats_port), "-sd", self.dir], quiet=True)
        wait_for_port(nats_port, nats.process, "nats-server")
        redis = self.spawn("redis-server", [server("redis-server"), "--port", str(redis_port),
                                            "--bind", "127.0.0.1", "--save", "",
                                            "--appendonly", "no", "--dir", self.dir], quiet=True)
        wait_for_port(redis_port, redis.process, "redis-server")
        self.nats_url = f"nats://127.0.0.1:{nats_port}"
        self.redis_url = f"redis://127.0.0.1:{redis_port}"
        self.spawn("coordinator", [binary("toolfan-coordinator"), "--nats-url", self.nats_url])
        self.spawn("rust worker", [binary("toolfan-worker"), "--nats-url", self.nats_url,
                                   "--id", self.RUST_WORKER, "--concurrency", "64",
                                   "--tools", "sleep,echo,fail"])
        asyncio.run(self.wait_for_workers([self.RUST_WORKER]))

    def spawn(self, what: str, args: List[str], env: Optional[dict] = None,
              quiet: bool = False) -> Child:
        child = Child(what, args, env, quiet)
        self.children.append(child)
        return child

    def python_worker(self, worker_id: str, *extra: str) -> Child:
        """tests/py_worker.py as worker ``worker_id`` (waited for by the caller)."""
        env = {**QUIET, "PYTHONUNBUFFERED": "1"}
        return self.spawn(f"python worker {worker_id}",
                          [sys.executable, str(HERE / "py_worker.py"), self.nats_url,
                           self.redis_url, worker_id, *extra], env)

    async def wait_for_workers(self, ids: List[str], within: float = 15.0) -> None:
        client = await toolfan.Client.connect(self.nats_url, caller="waiter")
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            seen = {w["id"] for w in await client.workers(0.3)}
            if set(ids) <= seen:
                # The coordinator hears the heartbeat about as soon.
                await asyncio.sleep(0.2)
                return
        raise RuntimeError(f"workers {ids} did not announce themselves within {within} s")

    def toolfan(self, *args: str, stdin: Optional[str] = None, timeout: float = 30) -> str:
        """Runs the toolfan CLI; its stdout."""
        done = subprocess.run([binary("toolfan"), *args], input=stdin, env=QUIET,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"toolfan {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def max_in_window(times: List[float], window: float) -> int:
    """Most of the sorted ``times`` within any ``window`` seconds."""
    times = sorted(times)
    most, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most
