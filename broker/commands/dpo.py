"""`ketenbroker dpo ...`: the DPO's command-line helpers for the dashboard.

ketenbroker dpo token [--client ID] [--broker URL]
    print an access token (scope audit:read) for the dashboard's login form
ketenbroker dpo login-url [--client ID] [--broker URL]
    print where to log in and the token to paste there

The token is obtained as every client obtains one (contract.md,
Authentication): an RFC 7523 client assertion signed with the DPO's own
private key from the key folder, traded at the broker's `/oauth/token`. The
broker never issues a token without that key, so the dashboard needs no
password of its own. The token lives at most 300 s; so does the session.

What it does not: open a browser or put the token in a URL (a URL ends up
in logs and history; RFC 6750 §2.3). The token goes to standard output only,
so `ketenbroker dpo token | xclip` works; everything else goes to standard
error.
"""

from __future__ import annotations

import argparse
import sys

import httpx

from adapters.sdk.client import BrokerClient, TokenRequestError
from broker.convenant import load_convenant
from broker.errors import KetenbrokerError
from broker.keys import KeyStore
from broker.settings import Settings

DPO_SCOPE = "audit:read"


def _default_client(settings: Settings) -> str | None:
    auditors = load_convenant(settings.convenant_path).auditors
    return auditors[0].id if auditors else None


def _token(args: argparse.Namespace, settings: Settings) -> str | None:
    client = args.client or _default_client(settings)
    if client is None:
        print("the convenant names no auditor (DPO) client; pass --client", file=sys.stderr)
        return None
    broker = (args.broker or settings.issuer).rstrip("/")
    try:
        key = KeyStore(settings.keys_dir).signing_key(client)
    except (KetenbrokerError, OSError, ValueError) as e:
        print(f"no usable private key for {client!r} in {settings.keys_dir}: {e}", file=sys.stderr)
        return None
    with BrokerClient(base_url=broker, client_id=client, signing_key=key, scopes=DPO_SCOPE) as c:
        try:
            return c.token()
        except TokenRequestError as e:
            print(f"the broker at {broker} refused a token for {client!r}: {e}", file=sys.stderr)
        except httpx.HTTPError as e:
            print(f"could not reach the broker at {broker}: {e}", file=sys.stderr)
    return None


def _print_token(args: argparse.Namespace, settings: Settings) -> int:
    token = _token(args, settings)
    if token is None:
        return 1
    print(token)
    return 0


def _print_login(args: argparse.Namespace, settings: Settings) -> int:
    token = _token(args, settings)
    if token is None:
        return 1
    broker = (args.broker or settings.issuer).rstrip("/")
    print(f"Open {broker}/dpo/login and paste this token (valid for at most 5 minutes):")
    print()
    print(token)
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `dpo` command group."""
    dpo = commands.add_parser("dpo", help="the DPO's dashboard").add_subparsers(
        dest="dpo_command", required=True
    )
    for name, handler, text in (
        ("token", _print_token, "print an access token (audit:read) for the dashboard login"),
        ("login-url", _print_login, "print the login page's address and a token to paste"),
    ):
        command = dpo.add_parser(name, help=text)
        command.add_argument("--client", help="the DPO's client id (default: the first auditor)")
        command.add_argument("--broker", help="the broker's base URL (default: the issuer)")
        command.set_defaults(handler=handler)
