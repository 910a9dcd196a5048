"""The media core: signaling, the selective forwarding unit on aiortc, the web client, join tokens.

It knows nothing of chat platforms. The bot core drives it through :class:`media.server.MediaServer`
and hears back through the events in :mod:`media.events`.
"""
