"""The refusal of a client message: raised anywhere a message is handled, sent as ``error``."""

from __future__ import annotations

from media.messages import ErrorCode


class ProtocolError(Exception):
    """A client message refused with an ``error`` reply; ``str(error)`` is the clear sentence."""

    def __init__(self, code: ErrorCode, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.fatal = fatal
