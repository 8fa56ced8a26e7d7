"""Worker: serve Python functions to the fleet through the Rust worker.

Each decorated function is registered on ``toolfan._native.Worker`` as a
coroutine function of ``(args, context)``. A coroutine function runs on the
asyncio loop ``run()`` was awaited on; a plain function runs in a thread of
the worker's own pool (as many threads as ``concurrency``), so a tool that
blocks does not stall the others. The limits, cache, timeouts, retries and
deadlines are the Rust worker's.
"""

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import signal
import threading
from typing import Any, Awaitable, Callable, Dict, List, Optional

from . import _native


def _takes_context(func: Callable[..., Any]) -> bool:
    """Whether ``func`` takes a second positional parameter, the TaskContext."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)


class Worker:
    """A worker process's tools, served to the fleet under its limits.

    ``Worker(nats_url=..., redis_url=..., concurrency=16)``; with
    ``redis_url`` the fleet's limits and result cache apply. ``limits`` gives
    default limits by key (``{"api": "50/s,burst=5"}``), ``limit_keys`` the
    keys each tool's calls are under (``{"search": ["api"]}``).
    """

    def __init__(self, nats_url: str = "nats://127.0.0.1:4222", **options: Any) -> None:
        self._native = _native.Worker(nats_url, **options)
        concurrency = options.get("concurrency", 64)
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, min(int(concurrency), 256)),
            thread_name_prefix="toolfan-tool",
        )
        self._running: Optional[_native.RunningWorker] = None

    @property
    def id(self) -> str:
        """The worker's id in the fleet, as results report it."""
        return self._native.id

    def tool(
        self,
        name: str,
        *,
        description: Optional[str] = None,
        parameters: Optional[Dict[str, Any]] = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Serves the decorated function as ``name``: ``f(args)`` or
        ``f(args, context)``, async or not, returning a JSON value."""

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            self._native.add_tool(
                name,
                self._as_coroutine(func, _takes_context(func)),
                description=description if description is not None else inspect.getdoc(func),
                parameters=parameters,
            )
            return func

        return register

    def batch_tool(
        self,
        name: str,
        *,
        max_size: int = 16,
        max_wait: float = 0.05,
        description: Optional[str] = None,
        parameters: Optional[Dict[str, Any]] = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Serves the decorated function as the batch tool ``name``: it gets
        a list of up to ``max_size`` calls' args (gathered for at most
        ``max_wait`` seconds) and returns one value per call, in order; an
        item that is an exception (a ``ToolError``) fails that call alone."""

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            self._native.add_batch_tool(
                name,
                self._as_coroutine(func, False),
                max_size=max_size,
                max_wait=max_wait,
                description=description if description is not None else inspect.getdoc(func),
                parameters=parameters,
            )
            return func

        return register

    def _as_coroutine(
        self, func: Callable[..., Any], with_context: bool
    ) -> Callable[..., Awaitable[Any]]:
        """``func`` as the coroutine function of ``(args, context)`` the
        engine calls; a sync function runs in the worker's thread pool."""
        is_async = inspect.iscoroutinefunction(func)
        threads = self._threads

        async def call(*args: Any) -> Any:
            if not with_context:
                args = args[:1]
            if is_async:
                return await func(*args)
            loop = asyncio.get_running_loop()
            run = functools.partial(contextvars.copy_context().run, func, *args)
            return await loop.run_in_executor(threads, run)

        return call

    async def run(self, *, stop_on_signals: bool = True) -> None:
        """Serves until cancelled (or SIGINT/SIGTERM, with ``stop_on_signals``
        in the main thread), then stops pulling and drains running tasks."""
        loop = asyncio.get_running_loop()
        running = self._native.start(loop)
        self._running = running
        installed: List[int] = []
        if stop_on_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, running.shutdown)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        # Waited for on a Python thread, not through a runtime thread's
        # callback: nothing of the runtime touches Python as it ends.
        try:
            await loop.run_in_executor(None, running.join)
        except asyncio.CancelledError:
            running.shutdown()
            await loop.run_in_executor(None, running.join)
            raise
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            self._threads.shutdown(wait=False)

    def shutdown(self) -> None:
        """Asks a running worker to stop and drain; ``run()`` returns after."""
        if self._running is not None:
            self._running.shutdown()
