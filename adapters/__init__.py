"""Platform adapters (Slack, Discord, the built-in web chat) and the process that runs them.

Only this package imports platform SDKs. Each adapter turns platform events into
:class:`bot.types.Command` and renders :class:`bot.types.Post` back.
"""
