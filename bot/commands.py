"""`/meet` and its subcommands: one entry point, :meth:`Commands.handle`, for every adapter."""

from __future__ import annotations

import logging

from bot import parser
from bot.cards import list_line
from bot.huddles import HuddleService
from bot.types import Button, Command, CommandResult, Reply

log = logging.getLogger("huddle.commands")

OOPS = "Something went wrong on our side and it has been logged. Please try again in a moment."


class Commands:
    """Turns a parsed `/meet` into work and answers; never raises to the adapter."""

    def __init__(self, huddles: HuddleService) -> None:
        self.huddles = huddles

    async def handle(self, command: Command) -> CommandResult:
        """Do what ``command`` asks and say what happened."""
        request = parser.parse(command.text)
        log.info(
            "command channel=%s user=%s request=%s",
            command.channel,
            command.user.id,
            type(request).__name__,
        )
        try:
            return await self._dispatch(command, request)
        except Exception:
            log.exception("command failed channel=%s text=%r", command.channel, command.text[:200])
            return CommandResult(replies=[Reply(OOPS)])

    async def _dispatch(self, command: Command, request: parser.Request) -> CommandResult:
        if isinstance(request, parser.ParseError):
            return CommandResult(replies=[Reply(request.message)])
        if isinstance(request, parser.ShowHelp):
            return CommandResult(replies=[Reply(parser.USAGE)])
        if isinstance(request, parser.StartHuddle):
            huddle, delivered = await self.huddles.create(
                command.channel, command.user, request.title
            )
            if delivered is None:
                queued = Reply(
                    f"Huddle `{huddle.id}` is open; its card is on its way (the chat platform is "
                    "slow to answer right now).",
                    (Button("Join", self.huddles.join_url(huddle.id)),),
                )
                return CommandResult(replies=[queued])
            return CommandResult(posted=[delivered])
        if isinstance(request, parser.ListHuddles):
            return await self._list(command)
        return await self._end(command, request)

    async def _list(self, command: Command) -> CommandResult:
        store = self.huddles.store
        open_here = await store.open_huddles(command.channel)
        if not open_here:
            return CommandResult(
                replies=[Reply("No active huddles in this channel. Type `/meet` to start one.")]
            )
        now = self.huddles.clock()
        lines = []
        buttons = []
        for huddle in open_here:
            stays = await store.attendance(huddle.id)
            present = sum(1 for s in stays if s.left_at is None)
            lines.append(list_line(huddle, present, now))
            buttons.append(Button(f"Join {huddle.title}"[:75], self.huddles.join_url(huddle.id)))
        header = f"{len(open_here)} active huddle{'s' if len(open_here) > 1 else ''} here:"
        return CommandResult(replies=[Reply("\n".join([header, *lines]), tuple(buttons))])

    async def _end(self, command: Command, request: parser.EndHuddle) -> CommandResult:
        huddle = await self.huddles.store.huddle(request.huddle_id)
        if huddle is None or huddle.channel.platform != command.channel.platform:
            return CommandResult(
                replies=[
                    Reply(f"There is no huddle `{request.huddle_id}`. `/meet list` shows ids.")
                ]
            )
        if not huddle.is_open:
            return CommandResult(replies=[Reply(f"Huddle `{huddle.id}` has already ended.")])
        if huddle.host_id != command.user.id:
            return CommandResult(
                replies=[Reply(f"Only {huddle.host_name}, who started `{huddle.id}`, can end it.")]
            )
        await self.huddles.end(huddle.id, "ended by host")
        return CommandResult(replies=[Reply(f"Ended “{huddle.title}” (`{huddle.id}`).")])
