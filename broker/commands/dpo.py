"""`ketenbroker dpo ...`: the DPO's command-line helpers for the dashboard.

ketenbroker dpo token [--client ID] [--broker URL]
    print an access token (scope audit:read) for the dashboard's login form
ketenbroker dpo login-url [--client ID] [--broker URL]
    print where to log in and the token to paste there
ketenbroker dpo login-code [--client ID] [--broker URL]
    print a login code: a DPoP-bound token and a proof for POST /dpo/session

The token is obtained as every client obtains one (contract.md,
Authentication): an RFC 7523 client assertion signed with the DPO's own
private key from the key folder, traded at the broker's `/oauth/token`. The
broker never issues a token without that key, so the dashboard needs no
password of its own. The token lives at most 300 s; so does the session.

Tokens are DPoP-bound (RFC 9449) to a key this command makes and forgets.
The login code (`broker.dpo.session`, "how a DPoP-bound token becomes a
dashboard session") adds a proof, signed with that key, for
`POST {broker}/dpo/session`: it is good once, for two minutes, so a token
seen elsewhere opens no dashboard.

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
from broker.dpo.session import SESSION_PATH
from broker.errors import KetenbrokerError
from broker.keys import KeyStore
from broker.settings import Settings

DPO_SCOPE = "audit:read"


def _default_client(settings: Settings) -> str | None:
    auditors = load_convenant(settings.convenant_path).auditors
    return auditors[0].id if auditors else None


def _token(args: argparse.Namespace, settings: Settings) -> str | None:
    return _credential(args, settings, login_code=False)


def _credential(args: argparse.Namespace, settings: Settings, *, login_code: bool) -> str | None:
    """An access token, or with `login_code` the token and a proof for the session endpoint."""
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
            scheme, token = c.authorization()
            if not login_code:
                return token
            if scheme != "DPoP":
                print(f"the broker at {broker} issued no DPoP-bound token", file=sys.stderr)
                return None
            # RFC 9449 §4.2: for this method and URL, this token (ath), and the
            # nonce that came with the token.
            return f"{token} {c.dpop_proof('POST', broker + SESSION_PATH, access_token=token)}"
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
    code = _credential(args, settings, login_code=True)
    if code is None:
        return 1
    broker = (args.broker or settings.issuer).rstrip("/")
    print(f"Open {broker}/dpo/login and paste this login code (once, within 2 minutes):")
    print()
    print(code)
    return 0


def _print_login_code(args: argparse.Namespace, settings: Settings) -> int:
    code = _credential(args, settings, login_code=True)
    if code is None:
        return 1
    print(code)
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `dpo` command group."""
    dpo = commands.add_parser("dpo", help="the DPO's dashboard").add_subparsers(
        dest="dpo_command", required=True
    )
    for name, handler, text in (
        ("token", _print_token, "print an access token (audit:read) for the dashboard login"),
        ("login-url", _print_login, "print the login page's address and a token to paste"),
        ("login-code", _print_login_code, "print a one-time login code (token and DPoP proof)"),
    ):
        command = dpo.add_parser(name, help=text)
        command.add_argument("--client", help="the DPO's client id (default: the first auditor)")
        command.add_argument("--broker", help="the broker's base URL (default: the issuer)")
        command.set_defaults(handler=handler)
