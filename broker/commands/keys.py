"""`ketenbroker keys rotate|revoke`: keys over time (issue 5, point 9).

    ketenbroker keys rotate PRINCIPAL [--alg EdDSA|ES256] [--dir DIR]
    ketenbroker keys revoke PRINCIPAL KID --reason TEXT [--dir DIR]

What it does: `rotate` gives a principal a new current key pair; its
earlier public keys stay trusted (tokens, checkpoints and assertions they
signed still verify), its earlier private key is deleted. `revoke` stops
trusting one key of a principal from the next request on. Both act on the
key folder (`--dir`, default the settings' `keys_dir`) through
`broker.keys.KeyStore`, which holds the rules; this module parses and prints.

What it does not: restart anything. A running broker and its adapters read
their own signing keys (and the adapters the broker's public keys) once, at
start; the output says when a restart is needed. `keys init` stays in
`broker/cli.py`; `register` adds these two beside it, and makes `keys init`
also make the policy-signer's ES256 key pair (it signs policy bundles,
`broker.policy.bundle`; its public key is also written as a PEM for OPA).

Exit status: 0 done (also for a key revoked before), 1 refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from broker.clock import SystemClock
from broker.convenant import load_convenant
from broker.errors import KetenbrokerError
from broker.keys import (
    ALLOWED_ALGORITHMS,
    BROKER_PRINCIPAL,
    POLICY_SIGNER,
    POLICY_SIGNER_ALGORITHM,
    KeyStore,
)
from broker.settings import MAX_ACCESS_TOKEN_TTL_SECONDS, Settings

EXIT_OK = 0
EXIT_REFUSED = 1


def _store(args: argparse.Namespace, settings: Settings) -> KeyStore:
    return KeyStore(Path(args.dir) if args.dir else settings.keys_dir)


def _known_principal(principal: str, settings: Settings) -> bool:
    # Only the broker and the convenant's principals have keys; anything else
    # is a typo, and must not become a file name.
    convenant = load_convenant(settings.convenant_path)
    return principal in {BROKER_PRINCIPAL, POLICY_SIGNER, *convenant.principal_ids()}


def _refuse(message: str) -> int:
    print(f"ERROR: {message}", file=sys.stderr)
    return EXIT_REFUSED


def _rotate(args: argparse.Namespace, settings: Settings) -> int:
    principal: str = args.principal
    if not _known_principal(principal, settings):
        return _refuse(f"expected the broker or a principal of the convenant, got {principal!r}")
    store = _store(args, settings)
    try:
        previous = store.current_kid(principal)
        key = store.rotate(principal, alg=args.alg)
    except KetenbrokerError as e:
        return _refuse(str(e))
    print(f"rotated {principal}: current key {key.kid} ({key.alg}), previous {previous}")
    print(
        "the previous public key stays trusted until revoked"
        f" (`ketenbroker keys revoke {principal} {previous} --reason ...`);"
        " its private key is deleted"
    )
    if principal == BROKER_PRINCIPAL:
        print(
            "restart the broker to sign with the new key, and the adapters to trust it;"
            " revoke the previous key only after that"
        )
    else:
        print(f"{principal}'s processes sign with the new key once restarted")
    return EXIT_OK


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    principal: str = args.principal
    kid: str = args.kid
    if not _known_principal(principal, settings):
        return _refuse(f"expected the broker or a principal of the convenant, got {principal!r}")
    store = _store(args, settings)
    try:
        current = store.current_kid(principal)
        new = store.store_revocation(principal, kid, reason=args.reason, now=SystemClock().now())
        record = next(r for r in store.revocations(principal) if r.kid == kid)
    except KetenbrokerError as e:
        return _refuse(str(e))
    if not new:
        print(f"{kid} of {principal} was revoked before, at {record.revoked_at}: {record.reason}")
        return EXIT_OK
    print(f"revoked {kid} of {principal} at {record.revoked_at}: {record.reason}")
    if principal == BROKER_PRINCIPAL:
        print("tokens and checkpoints signed with it no longer verify at the broker")
    else:
        print(
            f"client assertions signed with it are refused from the next request on;"
            f" access tokens it already obtained live at most"
            f" {MAX_ACCESS_TOKEN_TTL_SECONDS} s more"
        )
    if kid == current and principal != BROKER_PRINCIPAL:
        print(
            f"that was {principal}'s current key: it cannot authenticate until"
            f" `ketenbroker keys rotate {principal}`"
        )
    return EXIT_OK


def _init_policy_signer(args: argparse.Namespace, settings: Settings) -> int:
    """After `keys init`: the policy signer's key, under the same --if-missing rule."""
    store = _store(args, settings)
    if args.if_missing:
        made = store.ensure_policy_signer()
    else:
        store.create(POLICY_SIGNER, POLICY_SIGNER_ALGORITHM)
        made = [POLICY_SIGNER]
    if made:
        print(
            f"made the {POLICY_SIGNER} key pair ({POLICY_SIGNER_ALGORITHM});"
            f" OPA's --verification-key is {store.policy_signer_pem_path()}"
        )
    return EXIT_OK


def _keys_subcommands(
    keys: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    for action in keys._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("expected the `keys` command to have subcommands, got none")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `keys rotate` and `keys revoke` to the `keys` group `broker/cli.py` made."""
    keys_parser = commands.choices.get("keys")
    if keys_parser is None:
        raise RuntimeError("expected broker/cli.py to make the `keys` command before register")
    keys = _keys_subcommands(keys_parser)
    init = keys.choices.get("init")
    make_keys = init.get_default("handler") if init is not None else None
    if init is not None and make_keys is not None:

        def init_with_policy_signer(args: argparse.Namespace, settings: Settings) -> int:
            code: int = make_keys(args, settings)
            return code or _init_policy_signer(args, settings)

        init.set_defaults(handler=init_with_policy_signer)
    folder_help = "key folder (default: the settings' keys_dir)"

    rotate = keys.add_parser(
        "rotate",
        help="give a principal a new current key; earlier public keys stay trusted",
        description="The previous public key stays trusted until revoked;"
        " the previous private key is deleted.",
    )
    rotate.add_argument("principal", metavar="PRINCIPAL", help="broker, or a convenant principal")
    rotate.add_argument(
        "--alg",
        choices=list(ALLOWED_ALGORITHMS),
        default=None,
        help="algorithm of the new key (default: the current key's)",
    )
    rotate.add_argument("--dir", help=folder_help)
    rotate.set_defaults(handler=_rotate)

    revoke = keys.add_parser(
        "revoke",
        help="stop trusting one key of a principal, from the next request on",
        description="The broker's current key cannot be revoked: rotate first.",
    )
    revoke.add_argument("principal", metavar="PRINCIPAL", help="broker, or a convenant principal")
    revoke.add_argument("kid", metavar="KID", help="the key's kid (as in its JWKS)")
    revoke.add_argument("--reason", required=True, help="one line, kept in public/revoked.json")
    revoke.add_argument("--dir", help=folder_help)
    revoke.set_defaults(handler=_revoke)
