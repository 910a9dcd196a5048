"""Starting huddles: every `/meet` gets a huddle of its own, even when a short id is taken."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import huddles
from tests.product import running_huddle


async def test_a_taken_huddle_id_is_drawn_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second /meet draws the first one's id (1 in ~1e9 per huddle kept, but it happens).
    draws: Iterator[str] = iter(["aaaaaa", "aaaaaa", "bbbbbb"])
    monkeypatch.setattr(huddles, "new_huddle_id", lambda: next(draws))
    async with running_huddle(tmp_path / "data") as huddle:
        first, _host_link = (await huddle.say("general", "alice", "/meet Retro"))["posts"]
        second, _host_link = (await huddle.say("general", "bob", "/meet Planning"))["posts"]
        assert "`aaaaaa`" in first["text"] and "`bbbbbb`" in second["text"]
        opened = await huddle.parts.store.open_huddles()
        assert [(h.id, h.title) for h in opened] == [("aaaaaa", "Retro"), ("bbbbbb", "Planning")]
