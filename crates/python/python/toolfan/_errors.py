"""ToolError: how a Python tool fails on purpose.

The worker reads ``kind``, ``message``, ``is_retryable`` and
``retry_after`` (``toolfan._native`` looks this class up by name); any
other exception a tool raises is a non-retryable ``tool_error``.
"""

from typing import Optional


class ToolError(Exception):
    """A tool's failure: ``tool_error`` unless it says ``invalid_args``.

    ``raise ToolError("upstream said no")`` is final;
    ``raise ToolError.retryable("503 from upstream", retry_after=1.0)``
    is tried again (on any worker) while the task has retries and time left.
    """

    KINDS = ("tool_error", "invalid_args")

    def __init__(
        self,
        message: str,
        *,
        kind: str = "tool_error",
        retryable: bool = False,
        retry_after: Optional[float] = None,
    ) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"ToolError kind must be one of {self.KINDS}, not {kind!r}")
        if retry_after is not None and not retry_after >= 0:
            raise ValueError(f"ToolError retry_after must be >= 0 seconds, not {retry_after!r}")
        super().__init__(message)
        self.message = str(message)
        self.kind = kind
        self.is_retryable = bool(retryable) and kind != "invalid_args"
        self.retry_after = retry_after

    @classmethod
    def retryable(cls, message: str, *, retry_after: Optional[float] = None) -> "ToolError":
        """A ``tool_error`` another attempt may fix (a 503, a reset connection)."""
        return cls(message, retryable=True, retry_after=retry_after)

    @classmethod
    def invalid_args(cls, message: str) -> "ToolError":
        """The arguments do not fit the tool; never retried."""
        return cls(message, kind="invalid_args")

    def __repr__(self) -> str:
        return f"ToolError({self.message!r}, kind={self.kind!r}, retryable={self.is_retryable})"
