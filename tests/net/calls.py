"""What a browser in a call reports about its path to the server (getStats), for network tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from playwright.async_api import Browser, Page

from tests.media.test_browser_call import assert_receiving, participant_ids
from tests.net.serve import media_context

__all__ = [
    "assert_receiving",
    "join_call",
    "participant_ids",
    "paths_until_notice",
    "selected_path",
]

#: The nominated candidate pair of the page's connection: who is local and remote, and how.
SELECTED_PATH_JS = """
async () => {
  const pc = window.huddle && window.huddle.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  const byId = new Map();
  stats.forEach((r) => byId.set(r.id, r));
  let pair = null;
  stats.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) {
      pair = byId.get(r.selectedCandidatePairId);
    }
  });
  if (!pair) return null;
  const local = byId.get(pair.localCandidateId);
  const remote = byId.get(pair.remoteCandidateId);
  return {
    state: pair.state,
    local: local.candidateType,
    localProtocol: local.protocol,
    relayProtocol: local.relayProtocol || null,
    localUrl: local.url || null,
    remote: remote.candidateType,
    remoteAddress: remote.address,
    remotePort: remote.port,
  };
}
"""


async def join_call(browser: Browser, origin: str, url: str, name: str) -> Page:
    """Open the join link, type a name, click Join; the page once the call screen is up."""
    context = await media_context(browser, origin)
    page = await context.new_page()
    page.on("console", lambda m: print(f"[{name} console.{m.type}] {m.text}"))
    page.on("pageerror", lambda e: print(f"[{name} pageerror] {e}"))
    await page.goto(url, wait_until="domcontentloaded")
    await page.get_by_test_id("name-input").fill(name)
    await page.wait_for_function(
        "document.getElementById('preview').readyState >= 2", timeout=30_000
    )
    await page.get_by_test_id("join-button").click()
    await page.get_by_test_id("leave-button").wait_for(timeout=30_000)
    return page


async def selected_path(page: Page, within: float = 30.0) -> dict[str, Any]:
    """The page's nominated candidate pair, once there is one."""
    deadline = time.monotonic() + within
    while True:
        path: dict[str, Any] | None = await page.evaluate(SELECTED_PATH_JS)
        if path is not None and path["state"] == "succeeded":
            return path
        if time.monotonic() > deadline:
            raise AssertionError(f"no connected candidate pair within {within}s: {path}")
        await asyncio.sleep(0.25)


async def paths_until_notice(page: Page, within: float) -> list[dict[str, Any] | None]:
    """The page's candidate pair, sampled until the call screen gives way to a notice."""
    deadline = time.monotonic() + within
    seen: list[dict[str, Any] | None] = []
    while not await page.locator("#notice").is_visible():
        seen.append(await page.evaluate(SELECTED_PATH_JS))
        if time.monotonic() > deadline:
            raise AssertionError(f"no notice within {within}s; paths: {seen[-3:]}")
        await asyncio.sleep(0.5)
    return seen
