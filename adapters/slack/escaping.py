"""Slack's escaped command text, back into what the core reads.

The manifest asks Slack to escape `/meet`'s text (``should_escape: true``) so that a mention
arrives as the person's id, ``<@U024BE7LH|alice>``, which `/meet host <id> @someone` needs.
Everything else Slack escaped is turned back into the text the person typed: a channel is
``#name``, a link its label (or itself), ``@here`` is ``@here``, and ``&amp;`` ``&lt;`` ``&gt;``
are ``&`` ``<`` ``>``. Mentions become the core's neutral ``<@U024BE7LH>``.
"""

from __future__ import annotations

import html
import re

_ESCAPE = re.compile(r"<([^<>]*)>")


def _replace(match: re.Match[str]) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return f"<{target}>"  # a person: the core's mention
    if target.startswith("#"):
        return f"#{label}" if label else target
    if target.startswith("!"):
        # <!here>, <!channel>, <!subteam^S123|@team>, <!date^...|fallback>
        if label:
            return label
        return "@" + target[1:].split("^", 1)[0]
    return label or target  # a link


def readable(text: str) -> str:
    """``text`` as the core should read it (see the module's docstring)."""
    return html.unescape(_ESCAPE.sub(_replace, text))
