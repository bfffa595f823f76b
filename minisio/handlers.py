"""Event handlers: checked once when registered, called cheaply afterwards.

JavaScript passes whatever arguments arrive; Python raises ``TypeError`` when
the count is wrong. So the signature is read at registration: missing
arguments are filled with ``None`` (JavaScript's ``undefined``) and extra
ones are dropped, unless the handler takes ``*args``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["Handler", "ack_args", "ack_result"]


class Handler:
    """A user function with its signature read once: async or not, how many arguments."""

    __slots__ = ("fn", "is_async", "max_args", "min_args")

    def __init__(self, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise TypeError("handler must be callable")
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        params = inspect.signature(fn).parameters.values()
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        for p in params:
            if p.kind is p.KEYWORD_ONLY and p.default is p.empty:
                raise TypeError(f"handler {fn!r} has a required keyword-only argument")
        self.min_args = sum(1 for p in positional if p.default is p.empty)
        varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
        self.max_args: int | None = None if varargs else len(positional)

    def fit(self, args: list[Any]) -> list[Any]:
        """The arguments adapted to the handler's signature."""
        n = len(args)
        if self.max_args is not None and n > self.max_args:
            return args[: self.max_args]
        if n < self.min_args:
            return args + [None] * (self.min_args - n)
        return args


def ack_args(result: Any) -> list[Any]:
    """A handler's return value as ACK arguments: None -> [], tuple -> several."""
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]


def ack_result(args: list[Any]) -> Any:
    """ACK arguments as one value, the inverse of :func:`ack_args`."""
    if not args:
        return None
    if len(args) == 1:
        return args[0]
    return tuple(args)
