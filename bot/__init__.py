"""The platform-free core of huddle: commands, huddles, cards, storage.

Adapters turn platform events into :class:`bot.types.Command` and render :class:`bot.types.Post`
back; the core never imports an adapter.
"""

__version__ = "0.1.0"
