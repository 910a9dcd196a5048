"""`huddle user ...`: the admin's commands for web chat accounts (bot/accounts.py).

    huddle user add NAME            make an account (asks for the password twice)
    huddle user passwd NAME         change a password (signs that person out everywhere)
    huddle user remove NAME         delete an account, its sessions and tokens
    huddle user list                who has an account
    huddle user invite [--days N]   a one-use link: whoever opens it picks a name and password
    huddle user token NAME          an API token for scripts (Authorization: Bearer ...)

They work on the same database as `huddle serve` (HUDDLE_DATA_DIR / HUDDLE_DATABASE_URL), while
it runs or not.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import timedelta

from bot.accounts import AccountError, Accounts
from bot.config import Settings
from bot.store import Store


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``user`` command and its subcommands."""
    user = commands.add_parser("user", help="manage the web chat's accounts")
    user.add_argument("--data-dir", help="the data dir of `huddle serve` (HUDDLE_DATA_DIR)")
    actions = user.add_subparsers(dest="action", required=True)
    for name, text in (("add", "make an account"), ("passwd", "change a password")):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("name")
        sub.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin (for scripts)",
        )
    actions.add_parser("remove", help="delete an account").add_argument("name")
    actions.add_parser("list", help="list the accounts")
    invite = actions.add_parser("invite", help="print a one-use link that makes an account")
    invite.add_argument("--days", type=float, default=3.0, help="how long it works (default 3)")
    token = actions.add_parser("token", help="print a new API token for an account")
    token.add_argument("name")
    token.add_argument("--label", default="", help="what the token is for, to tell them apart")
    token.add_argument(
        "--revoke", action="store_true", help="instead: end every API token of the account"
    )


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Again: ") != first:
        raise AccountError("The two passwords differ; nothing changed.")
    return first


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Do one ``huddle user`` command; the process's exit status."""
    settings.resolve()
    store = await Store.open(settings.database_url)
    accounts = Accounts(store)
    try:
        if args.action == "add":
            await accounts.add_user(args.name, _password(args))
            print(f"Account {args.name} made. They sign in at {settings.public_url}/signin")
        elif args.action == "passwd":
            await accounts.set_password(args.name, _password(args))
            print(f"Password of {args.name} changed; their browser sessions have ended.")
        elif args.action == "remove":
            await accounts.remove_user(args.name)
            print(f"Account {args.name} removed; signed out everywhere.")
        elif args.action == "list":
            for account in await accounts.users():
                print(
                    f"{account.name}\tsince {account.created_at:%Y-%m-%d}\t"
                    f"{account.sessions} sessions\t{account.tokens} tokens\t"
                    f"by {account.created_by}"
                )
        elif args.action == "invite":
            days = timedelta(days=args.days)
            code = await accounts.invite(days)
            print(f"{settings.public_url}/invite/{code}")
            print(f"(works once, for {args.days:g} days)", file=sys.stderr)
        elif args.action == "token":
            if args.revoke:
                count = await accounts.revoke_tokens(args.name)
                print(f"{count} API tokens of {args.name} revoked.")
            else:
                print(await accounts.issue_token(args.name, args.label))
        return 0
    except AccountError as exc:
        print(f"huddle user {args.action}: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
