"""The built-in web chat: channels, messages, threads and buttons in a browser; no account."""

from adapters.web.chat import WebChat

__all__ = ["WebChat"]
