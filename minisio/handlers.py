"""Event handlers: checked once when registered, called cheaply afterwards.

JavaScript passes whatever arguments arrive; Python raises ``TypeError`` when
the count is wrong. So the signature is read at registration: missing
arguments are filled with ``None`` (JavaScript's ``undefined``) and extra
ones are dropped, unless the handler takes ``*args``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator
from typing import Any

__all__ = ["EMITTED", "Emitted", "Handler", "ack_args", "ack_result", "refuse_callback_parameter"]

#: Names a Node-style handler gives its ack function: ``(data, callback) => ...``.
CALLBACK_NAMES = frozenset({"callback", "cb", "ack", "fn"})


class Handler:
    """A user function with its signature read once: async or not, how many arguments."""

    __slots__ = ("fn", "is_async", "last_param", "max_args", "min_args", "once")

    def __init__(self, fn: Callable[..., Any], once: bool = False) -> None:
        if not callable(fn):
            raise TypeError("handler must be callable")
        self.fn = fn
        self.once = once
        self.is_async = inspect.iscoroutinefunction(fn)
        params = inspect.signature(fn).parameters.values()
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        for p in params:
            if p.kind is p.KEYWORD_ONLY and p.default is p.empty:
                raise TypeError(f"handler {fn!r} has a required keyword-only argument")
        self.min_args = sum(1 for p in positional if p.default is p.empty)
        varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
        self.max_args: int | None = None if varargs else len(positional)
        self.last_param = positional[-1].name if positional and not varargs else None

    def bind(self, first: Any) -> Handler:
        """The same handler with its first argument given (a method's socket), unread again."""
        bound = Handler.__new__(Handler)
        bound.fn = functools.partial(self.fn, first)
        bound.is_async = self.is_async
        bound.once = self.once
        bound.min_args = max(0, self.min_args - 1)
        bound.max_args = None if self.max_args is None else max(0, self.max_args - 1)
        bound.last_param = self.last_param if self.max_args != 1 else None
        return bound

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


def refuse_callback_parameter(handler: Handler, event: str) -> None:
    """Raise ``TypeError`` for a handler whose last parameter looks like Node's ack function.

    In Node the ack is a function passed last, ``(data, callback) =>``; here
    the return value answers it, and such a parameter would silently get
    ``None`` (the ack would never come). The rule: the last positional
    parameter, without ``*args``, named ``callback``, ``cb``, ``ack`` or ``fn``.
    Rename it to take a value of that name.
    """
    if handler.last_param in CALLBACK_NAMES:
        raise TypeError(
            f"the handler for {event!r} takes a {handler.last_param!r} parameter, as a Node "
            "ack callback; in minisio the handler's return value answers the ack: "
            "return the answer instead (or rename the parameter)"
        )


class Emitted:
    """What an emit returns: nothing to wait for, and saying so when awaited.

    Emits are plain calls (the frames are queued when the call returns), but
    python-socketio's ``AsyncServer`` has users write ``await sio.emit(...)``.
    Returning ``None`` would make that ``await None``, a ``TypeError`` that
    names neither emit nor the fix; one shared instance costs no allocation.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<emitted>"

    def __await__(self) -> Generator[Any, None, None]:
        raise TypeError(
            "emits are plain calls in minisio: the event is already sent, drop the 'await' "
            "(to wait for the client's answer, use 'await ....emit_with_ack(...)')"
        )


#: The one value every emit returns.
EMITTED = Emitted()
