"""toolfan for Python: fan tool calls out over a toolfan fleet, and serve
Python tools to it.

The engine is toolfan's Rust client and worker (``toolfan._native``, bound
with PyO3): submit, keepalives, recovery, ordering, and the worker pipeline
with its fleet limits, cache and deadlines. This package adds decorators
(:class:`Worker`), :class:`ToolError` and the :class:`Scheduler` facade.
"""

from ._native import (
    Client,
    ClientError,
    Job,
    JobEvents,
    Task,
    TaskContext,
    TaskError,
    TaskEvent,
    TaskResult,
    WorkerError,
)
from ._errors import ToolError
from ._scheduler import Scheduler
from ._worker import Worker

#: A task's result, as the scheduler library calls it.
Result = TaskResult

__all__ = [
    "Client",
    "ClientError",
    "Job",
    "JobEvents",
    "Result",
    "Scheduler",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskEvent",
    "TaskResult",
    "ToolError",
    "Worker",
    "WorkerError",
]
