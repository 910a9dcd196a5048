"""The built-in web chat: channels, messages, threads and buttons in a browser.

Open to whoever reaches it on loopback; with accounts once reachable from elsewhere.
"""

from adapters.web.auth import WebAuth
from adapters.web.chat import WebChat

__all__ = ["WebAuth", "WebChat"]
