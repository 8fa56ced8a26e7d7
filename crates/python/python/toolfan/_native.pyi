"""Type stubs of toolfan's extension module (the Rust client and worker)."""

from typing import Any, AsyncIterator, Awaitable, Dict, List, Optional, Sequence, Tuple

JSON = Any

class ClientError(Exception):
    """A job could not be submitted, or its answer did not come."""

class WorkerError(Exception):
    """A worker could not start, or failed while serving."""

class Task:
    """One call of a tool the fleet serves."""

    def __init__(
        self,
        tool: str,
        args: Optional[JSON] = None,
        *,
        timeout: Optional[float] = None,
        retries: int = 0,
        rate_key: Optional[str] = None,
        cost: int = 1,
        idempotency_key: Optional[str] = None,
        cache: bool = False,
        cache_ttl: Optional[float] = None,
        cache_failures: bool = False,
    ) -> None: ...
    @property
    def tool(self) -> str: ...
    @property
    def args(self) -> JSON: ...
    @property
    def timeout(self) -> Optional[float]: ...
    @property
    def retries(self) -> int: ...

class TaskError:
    """Why a task failed; ``str()`` gives ``"kind: message"``."""

    @property
    def kind(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def retryable(self) -> bool: ...
    @property
    def retry_after(self) -> Optional[float]: ...

class TaskResult:
    """One task's result: ``value`` when ``ok``, else ``error``."""

    @property
    def index(self) -> int: ...
    @property
    def ok(self) -> bool: ...
    @property
    def value(self) -> JSON: ...
    @property
    def error(self) -> Optional[TaskError]: ...
    @property
    def attempts(self) -> int: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def worker(self) -> Optional[str]: ...
    @property
    def cache(self) -> Optional[str]: ...

class TaskEvent:
    """A task finished: its result, and how far the job has come."""

    @property
    def index(self) -> int: ...
    @property
    def result(self) -> TaskResult: ...
    @property
    def finished(self) -> int: ...
    @property
    def total(self) -> int: ...

class JobEvents(AsyncIterator[TaskEvent]):
    def __aiter__(self) -> "JobEvents": ...
    def __anext__(self) -> Awaitable[TaskEvent]: ...

class Job:
    """A submitted job."""

    @property
    def id(self) -> str: ...
    @property
    def total(self) -> int: ...
    def events(self) -> JobEvents: ...
    def results(self) -> Awaitable[List[TaskResult]]: ...
    def wait(self) -> Awaitable[Tuple[List[TaskResult], Dict[str, Any]]]: ...
    def cancel(self) -> Awaitable[None]: ...

class Client:
    """A connection to a toolfan cluster."""

    @staticmethod
    def connect(
        nats_url: str,
        *,
        caller: str = "default",
        caller_grace: Optional[float] = 10.0,
        answer_grace: float = 5.0,
        create_streams: bool = True,
    ) -> Awaitable["Client"]: ...
    @property
    def caller(self) -> str: ...
    def fanout(self, tasks: Sequence[Task]) -> Awaitable[List[TaskResult]]: ...
    def submit(
        self,
        tasks: Sequence[Task],
        *,
        max_concurrency: int = 16,
        deadline: float = 30.0,
        policy: str = "all",
    ) -> Awaitable[Job]: ...
    def tools(self, listen: float = 0.5) -> Awaitable[List[Dict[str, Any]]]: ...
    def workers(self, listen: float = 0.5) -> Awaitable[List[Dict[str, Any]]]: ...
    def answer_openai(self, tool_calls: Sequence[Dict[str, Any]]) -> Awaitable[List[Dict[str, Any]]]: ...
    def answer_anthropic(self, tool_uses: Sequence[Dict[str, Any]]) -> Awaitable[List[Dict[str, Any]]]: ...
    def close(self) -> Awaitable[None]: ...

class TaskContext:
    """What a tool knows about the task it runs."""

    @property
    def job(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def attempt(self) -> int: ...
    @property
    def worker(self) -> str: ...

class RunningWorker:
    def shutdown(self) -> None: ...
    def join(self) -> None: ...

class Worker:
    def __init__(
        self,
        nats_url: str = "nats://127.0.0.1:4222",
        *,
        redis_url: Optional[str] = None,
        concurrency: int = 64,
        id: Optional[str] = None,
        limits: Optional[Dict[str, str]] = None,
        limit_keys: Optional[Dict[str, List[str]]] = None,
        tool_max_in_flight: Optional[Dict[str, int]] = None,
        drain_timeout: float = 30.0,
        retry_base: float = 0.1,
        retry_cap: float = 10.0,
        lease_ttl: float = 10.0,
        max_result_bytes: int = 524288,
    ) -> None: ...
    @property
    def id(self) -> str: ...
    def add_tool(
        self, name: str, func: Any, *, description: Optional[str] = None,
        parameters: Optional[Dict[str, Any]] = None,
    ) -> None: ...
    def add_batch_tool(
        self, name: str, func: Any, *, max_size: int, max_wait: float,
        description: Optional[str] = None, parameters: Optional[Dict[str, Any]] = None,
    ) -> None: ...
    def start(self, event_loop: Any) -> RunningWorker: ...
