"""Slack: slash commands in, Block Kit cards and Slack Calls out (see ``adapter.py``).

Only this package imports ``slack_bolt`` and ``slack_sdk``; the server imports it only when
``SLACK_BOT_TOKEN`` is set.
"""

from adapters.slack.adapter import SlackAdapter

__all__ = ["SlackAdapter"]
