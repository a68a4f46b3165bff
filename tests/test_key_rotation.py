"""Keys over time (broker/keys.py, commands/keys.py): rotation keeps history, revocation bites.

The invariants: a rotation never makes an old signature unverifiable, and
never leaves a private key behind or readable by others; a revocation holds
from the next read of the folder, by any process, and cannot be undone by
handing the old JWKS over again; the broker never revokes the key it signs with.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from broker.audit.checkpoint import (
    Checkpoint,
    CheckpointSignatureError,
    sign_checkpoint,
    verify_checkpoint,
)
from broker.auth.assertions import verify_client_assertion
from broker.auth.tokens import AccessTokenIssuer, verify_access_token
from broker.clock import rfc3339
from broker.commands import keys as keys_commands
from broker.errors import InvalidClientError, InvalidTokenError, TrustError
from broker.keys import (
    MAX_REASON_CHARS,
    CurrentKeyRevocationError,
    KeyStore,
    Revocation,
    RevocationListError,
    RevocationReasonError,
    SigningKey,
    UnknownKeyError,
    UntrustedSigningKeyError,
    keyset_from_jwks,
    parse_revocations,
)
from broker.settings import Settings

BROKER = "broker"
PARTNER = "gemeente-lekstroom"
OTHER = "politie-lekstroom"
PRINCIPALS = [BROKER, PARTNER, OTHER]
ISSUER = "http://127.0.0.1:8400"
NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
ROOT_HASH = bytes(range(32))
REVOKED_AT = rfc3339(NOW)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    keystore = KeyStore(tmp_path / "keys")
    keystore.init(PRINCIPALS)
    return keystore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _served_jwks(store: KeyStore, principal: str = BROKER) -> dict[str, Any]:
    """What /.well-known/jwks.json answers (broker/api/routes/oauth.py), through JSON."""
    document: dict[str, Any] = json.loads(json.dumps(store.public_keyset(principal).to_jwks()))
    return document


def _checkpoint(key: SigningKey, size: int = 7) -> Checkpoint:
    return sign_checkpoint(key=key, size=size, root_hash=ROOT_HASH, now=NOW)


def _access_token(key: SigningKey) -> str:
    issuer = AccessTokenIssuer(signing_key=key, issuer=ISSUER, ttl_seconds=300)
    return issuer.issue(
        principal=PARTNER, role="gemeente", function=None, scopes=frozenset({"exchange"}), now=NOW
    ).access_token


def _assertion(key: SigningKey, client_id: str = PARTNER) -> str:
    """An RFC 7523 client assertion as a partner's BrokerClient makes it."""
    issued_at = int(NOW.timestamp())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER + "/oauth/token",
        "jti": secrets.token_urlsafe(18),
        "iat": issued_at,
        "exp": issued_at + 60,
    }
    return jwt.encode(claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid})


def _verify_assertion(store: KeyStore, assertion: str, client_id: str = PARTNER) -> None:
    # What the token endpoint does (broker/auth/token_service.py): the keys
    # pinned for the client, read from the store at the moment of the request.
    verify_client_assertion(
        assertion,
        client_id=client_id,
        keys=store.public_keyset(client_id),
        audiences=frozenset({ISSUER, ISSUER + "/oauth/token"}),
        now=NOW,
    )


def _revoke(store: KeyStore, principal: str, kid: str, reason: str = "test") -> bool:
    return store.store_revocation(principal, kid, reason=reason, now=NOW)


# ---- rotation -----------------------------------------------------------------------


def test_rotation_keeps_old_checkpoints_verifiable_through_the_jwks(store: KeyStore) -> None:
    old = store.signing_key(BROKER)
    before = _checkpoint(old)
    new = store.rotate(BROKER)
    after = _checkpoint(new, size=9)
    served = keyset_from_jwks(_served_jwks(store))
    assert new.kid != old.kid
    assert (before.key_id, after.key_id) == (old.kid, new.kid)
    verify_checkpoint(before, keys=served)
    verify_checkpoint(after, keys=served)


def test_rotation_keeps_tokens_of_the_previous_key_verifiable(store: KeyStore) -> None:
    issued_before = _access_token(store.signing_key(BROKER))
    store.rotate(BROKER)
    claims = verify_access_token(
        issued_before, keys=store.public_keyset(BROKER), issuer=ISSUER, now=NOW
    )
    assert claims.principal == PARTNER


def test_new_tokens_carry_the_new_kid(store: KeyStore) -> None:
    old = store.signing_key(BROKER)
    new = store.rotate(BROKER)
    token = _access_token(store.signing_key(BROKER))
    assert jwt.get_unverified_header(token)["kid"] == new.kid != old.kid
    verify_access_token(token, keys=store.public_keyset(BROKER), issuer=ISSUER, now=NOW)


def test_history_is_newest_first_and_current_key_signs(store: KeyStore) -> None:
    first = store.signing_key(BROKER).kid
    second = store.rotate(BROKER).kid
    third = store.rotate(BROKER).kid
    assert [jwk["kid"] for jwk in _served_jwks(store)["keys"]] == [third, second, first]
    on_disk = json.loads((store.root / "public" / "broker.jwks.json").read_text())
    assert [jwk["kid"] for jwk in on_disk["keys"]] == [third, second, first]
    assert store.signing_key(BROKER).kid == third
    assert store.current_kid(BROKER) == third


def test_rotated_out_private_key_is_gone_from_the_folder(store: KeyStore) -> None:
    old_pem = (store.root / "private" / f"{PARTNER}.pem").read_bytes()
    store.rotate(PARTNER)
    leftovers = [
        path for path in store.root.rglob("*") if path.is_file() and old_pem in path.read_bytes()
    ]
    assert leftovers == []
    # No temporary file either: only the current keys and the KEK.
    assert sorted(p.name for p in (store.root / "private").iterdir()) == sorted(
        [f"{p}.pem" for p in PRINCIPALS] + ["case-kek.bin"]
    )


@pytest.mark.parametrize(
    "loosened",
    [
        # someone made the key group- and world-readable before the rotation
        0o644,
        # or executable, which says nothing good either
        0o700,
    ],
)
def test_private_key_files_never_leave_mode_0600(store: KeyStore, loosened: int) -> None:
    pem = store.root / "private" / f"{PARTNER}.pem"
    os.chmod(pem, loosened)
    store.rotate(PARTNER)
    assert _mode(pem) == 0o600
    os.chmod(pem, loosened)
    store.create(PARTNER)  # `keys init` without --if-missing
    assert _mode(pem) == 0o600
    assert _mode(store.root / "private" / "case-kek.bin") == 0o600


def test_rotation_keeps_the_algorithm_unless_told(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    store.init([BROKER], alg="ES256")
    es256 = store.signing_key(BROKER)
    assert store.rotate(BROKER).alg == "ES256"
    eddsa = store.rotate(BROKER, alg="EdDSA")
    assert eddsa.alg == "EdDSA"
    served = keyset_from_jwks(_served_jwks(store))
    assert [key.alg for key in served] == ["EdDSA", "ES256", "ES256"]
    verify_checkpoint(_checkpoint(es256), keys=served)
    verify_checkpoint(_checkpoint(eddsa), keys=served)


def test_rotating_a_principal_without_a_key_is_refused(store: KeyStore) -> None:
    with pytest.raises(UnknownKeyError, match="keys init"):
        store.rotate("buurtteam-lekstroom")
    assert not (store.root / "public" / "buurtteam-lekstroom.jwks.json").exists()


def test_rotated_partner_keeps_authenticating_with_either_key(store: KeyStore) -> None:
    # A partner's processes switch keys one by one; both must work meanwhile.
    old = store.signing_key(PARTNER)
    new = store.rotate(PARTNER)
    _verify_assertion(store, _assertion(old))
    _verify_assertion(store, _assertion(new))


def test_init_if_missing_keeps_rotated_keys_and_history(store: KeyStore) -> None:
    store.rotate(BROKER)
    before = _served_jwks(store)
    current = store.signing_key(BROKER).kid
    assert store.init(PRINCIPALS, if_missing=True) == []
    assert store.signing_key(BROKER).kid == current
    assert _served_jwks(store) == before


def test_init_without_if_missing_keeps_the_public_history(store: KeyStore) -> None:
    # A fresh key pair must not make old checkpoints unverifiable.
    old = store.signing_key(BROKER)
    before = _checkpoint(old)
    assert store.init([BROKER], if_missing=False) == [BROKER]
    assert store.signing_key(BROKER).kid != old.kid
    verify_checkpoint(before, keys=keyset_from_jwks(_served_jwks(store)))


# ---- revocation ---------------------------------------------------------------------


def test_revoked_partner_key_is_refused_at_once_by_another_reader(store: KeyStore) -> None:
    # The broker process and the operator's CLI each have their own KeyStore
    # over the same folder; nothing is cached between calls.
    broker_view = KeyStore(store.root)
    old = broker_view.signing_key(PARTNER)
    assertion = _assertion(old)
    _verify_assertion(broker_view, assertion)
    new = store.rotate(PARTNER)
    assert _revoke(store, PARTNER, old.kid, reason="laptop stolen")
    with pytest.raises(InvalidClientError):
        _verify_assertion(broker_view, assertion)
    with pytest.raises(InvalidClientError):
        _verify_assertion(broker_view, _assertion(old))
    _verify_assertion(broker_view, _assertion(new))
    assert broker_view.public_keyset(PARTNER).kids() == [new.kid]


def test_revocation_is_recorded_and_the_key_leaves_the_history_file(store: KeyStore) -> None:
    old = store.signing_key(PARTNER)
    new = store.rotate(PARTNER)
    _revoke(store, PARTNER, old.kid, reason="laptop stolen")
    recorded = json.loads((store.root / "public" / "revoked.json").read_text())
    assert recorded == {
        PARTNER: [{"kid": old.kid, "reason": "laptop stolen", "revoked_at": REVOKED_AT}]
    }
    on_disk = json.loads((store.root / "public" / f"{PARTNER}.jwks.json").read_text())
    assert [jwk["kid"] for jwk in on_disk["keys"]] == [new.kid]
    assert store.revocations(PARTNER) == (
        Revocation(kid=old.kid, reason="laptop stolen", revoked_at=REVOKED_AT),
    )
    assert store.revocations(OTHER) == ()


def test_revoked_key_stays_out_when_its_jwks_is_handed_over_again(store: KeyStore) -> None:
    jwks_file = store.root / "public" / f"{PARTNER}.jwks.json"
    old = store.signing_key(PARTNER)
    store.rotate(PARTNER)
    with_old = jwks_file.read_text()
    _revoke(store, PARTNER, old.kid)
    jwks_file.write_text(with_old)  # the partner re-sends a JWKS that still lists it
    assert store.public_keyset(PARTNER).get(old.kid) is None
    with pytest.raises(InvalidClientError):
        _verify_assertion(store, _assertion(old))
    # A later rotation does not bring it back either.
    store.rotate(PARTNER)
    assert old.kid not in [jwk["kid"] for jwk in json.loads(jwks_file.read_text())["keys"]]
    assert store.public_keyset(PARTNER).get(old.kid) is None


def test_revoked_previous_broker_key_no_longer_verifies_its_tokens_or_checkpoints(
    store: KeyStore,
) -> None:
    old = store.signing_key(BROKER)
    token, checkpoint = _access_token(old), _checkpoint(old)
    store.rotate(BROKER)
    _revoke(store, BROKER, old.kid, reason="key file copied to a backup we lost")
    served = keyset_from_jwks(_served_jwks(store))
    assert old.kid not in served.kids()
    with pytest.raises(InvalidTokenError):
        verify_access_token(token, keys=store.public_keyset(BROKER), issuer=ISSUER, now=NOW)
    with pytest.raises(CheckpointSignatureError):
        verify_checkpoint(checkpoint, keys=served)


def test_revoking_the_broker_current_key_is_refused(store: KeyStore) -> None:
    current = store.signing_key(BROKER)
    with pytest.raises(CurrentKeyRevocationError, match="rotate first"):
        _revoke(store, BROKER, current.kid)
    assert not (store.root / "public" / "revoked.json").exists()
    assert store.signing_key(BROKER).kid == current.kid


def test_revoked_current_partner_key_cannot_sign_until_rotated(store: KeyStore) -> None:
    # A partner key is revoked at once even when it is the only one: the
    # partner is locked out (fail closed) until it has a new key.
    current = store.signing_key(PARTNER)
    assert _revoke(store, PARTNER, current.kid)
    assert len(store.public_keyset(PARTNER)) == 0
    with pytest.raises(UntrustedSigningKeyError, match="keys rotate"):
        store.signing_key(PARTNER)
    with pytest.raises(InvalidClientError):
        _verify_assertion(store, _assertion(current))
    new = store.rotate(PARTNER)
    assert store.signing_key(PARTNER).kid == new.kid
    assert store.public_keyset(PARTNER).kids() == [new.kid]
    _verify_assertion(store, _assertion(new))


@pytest.mark.parametrize(
    ("principal", "kid_of", "refusal"),
    [
        # a kid no key of the partner has
        (PARTNER, lambda _store: "no-such-kid", UnknownKeyError),
        # another principal's kid: revocations are per principal
        (PARTNER, lambda store: store.signing_key(OTHER).kid, UnknownKeyError),
        # a principal without keys at all
        ("buurtteam-lekstroom", lambda _store: "no-such-kid", TrustError),
    ],
)
def test_revoking_an_unknown_key_is_refused(
    store: KeyStore,
    principal: str,
    kid_of: Callable[[KeyStore], str],
    refusal: type[Exception],
) -> None:
    with pytest.raises(refusal):
        _revoke(store, principal, kid_of(store))
    assert not (store.root / "public" / "revoked.json").exists()
    assert store.public_keyset(OTHER).kids() == [store.signing_key(OTHER).kid]


def test_revoking_twice_is_not_new_and_keeps_the_first_record(store: KeyStore) -> None:
    old = store.signing_key(PARTNER)
    store.rotate(PARTNER)
    assert _revoke(store, PARTNER, old.kid, reason="first") is True
    later = NOW + timedelta(days=1)
    assert store.store_revocation(PARTNER, old.kid, reason="second", now=later) is False
    (record,) = store.revocations(PARTNER)
    assert (record.reason, record.revoked_at) == ("first", REVOKED_AT)


@pytest.mark.parametrize(
    "reason",
    [
        # nothing: an operator must say why
        "",
        # only blanks is nothing too
        "   ",
        # a second line could pose as another record when printed
        "compromised\nrevoked_at: never",
        # longer than an operator's one line
        "x" * (MAX_REASON_CHARS + 1),
    ],
)
def test_revocation_needs_a_one_line_reason(store: KeyStore, reason: str) -> None:
    old = store.signing_key(PARTNER)
    store.rotate(PARTNER)
    with pytest.raises(RevocationReasonError):
        _revoke(store, PARTNER, old.kid, reason=reason)
    assert store.public_keyset(PARTNER).get(old.kid) is not None


def _valid_record(kid: str = "k1") -> dict[str, str]:
    return {"kid": kid, "reason": "r", "revoked_at": REVOKED_AT}


MALFORMED_LISTS = [
    # invalid JSON: a truncated write by hand
    ('{"gemeente-lekstroom": [', "expected JSON"),
    # not an object
    ("[]", "expected an object"),
    # a principal's records not a list
    (json.dumps({PARTNER: _valid_record()}), "expected a list"),
    # a record without a reason
    (json.dumps({PARTNER: [{"kid": "k1", "revoked_at": REVOKED_AT}]}), "expected members"),
    # a record with a member too many
    (json.dumps({PARTNER: [{**_valid_record(), "restored": "yes"}]}), "expected members"),
    # a kid that is not a string
    (json.dumps({PARTNER: [{**_valid_record(), "kid": ["k1"]}]}), "expected kid"),
    # a principal that could name a path
    (json.dumps({"../broker": [_valid_record()]}), "principal ids"),
    # a principal listed twice: which list holds would depend on the parser
    ('{"gemeente-lekstroom": [], "gemeente-lekstroom": []}', "appears twice"),
]


@pytest.mark.parametrize(("text", "fragment"), MALFORMED_LISTS)
def test_malformed_revocation_list_trusts_no_key(store: KeyStore, text: str, fragment: str) -> None:
    (store.root / "public" / "revoked.json").write_text(text)
    for principal in PRINCIPALS:
        with pytest.raises(RevocationListError, match=fragment):
            store.public_keyset(principal)
    with pytest.raises(RevocationListError):
        store.signing_key(PARTNER)
    with pytest.raises(RevocationListError):
        store.rotate(PARTNER)


def test_revocation_list_round_trips() -> None:
    document = {PARTNER: [_valid_record("k1"), _valid_record("k2")], BROKER: []}
    parsed = parse_revocations(document)
    assert [record.kid for record in parsed[PARTNER]] == ["k1", "k2"]
    assert parsed[BROKER] == ()


@pytest.mark.parametrize(
    "principal",
    [
        # a path out of the folder
        "../../etc/passwd",
        # a sub-folder
        "private/broker",
        # the convenant's ids are lower case
        "Broker",
        # nothing
        "",
    ],
)
def test_principal_ids_never_name_another_file(store: KeyStore, principal: str) -> None:
    with pytest.raises(TrustError, match="principal id"):
        store.public_keyset(principal)
    with pytest.raises(TrustError, match="principal id"):
        store.rotate(principal)


def test_jwks_with_one_kid_twice_is_refused(store: KeyStore) -> None:
    jwk = store.signing_key(PARTNER).public_jwk()
    other = {**store.signing_key(OTHER).public_jwk(), "kid": jwk["kid"]}
    with pytest.raises(TrustError, match="each kid once"):
        keyset_from_jwks({"keys": [jwk, other]})


# ---- the command line ---------------------------------------------------------------


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """`ketenbroker keys ...` with this module registered beside cli.py's `keys init`."""
    for name in list(os.environ):
        if name.upper().startswith("KETENBROKER_"):
            monkeypatch.delenv(name)

    def invoke(*argv: str) -> tuple[int, str, str]:
        parser = argparse.ArgumentParser(prog="ketenbroker")
        commands = parser.add_subparsers(dest="command", required=True)
        commands.add_parser("keys").add_subparsers(dest="keys_command", required=True)
        keys_commands.register(commands)
        args = parser.parse_args(["keys", *argv])
        code: int = args.handler(args, Settings())
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def test_cli_rotates_and_says_what_to_restart(store: KeyStore, run: Run) -> None:
    old = store.signing_key(BROKER).kid
    code, out, err = run("rotate", BROKER, "--dir", str(store.root))
    new = store.signing_key(BROKER).kid
    assert (code, err) == (0, "")
    assert f"rotated broker: current key {new} (EdDSA), previous {old}" in out
    assert "restart the broker" in out
    assert store.public_keyset(BROKER).kids() == [new, old]


def test_cli_rotates_to_another_algorithm(store: KeyStore, run: Run) -> None:
    code, _, _ = run("rotate", PARTNER, "--alg", "ES256", "--dir", str(store.root))
    assert code == 0
    assert store.signing_key(PARTNER).alg == "ES256"


def test_cli_revokes_a_partner_key(store: KeyStore, run: Run) -> None:
    old = store.signing_key(PARTNER).kid
    store.rotate(PARTNER)
    code, out, _ = run("revoke", PARTNER, old, "--reason", "leaked", "--dir", str(store.root))
    assert code == 0
    assert f"revoked {old} of {PARTNER}" in out
    assert "at most 300 s" in out
    assert store.public_keyset(PARTNER).get(old) is None
    code, out, _ = run("revoke", PARTNER, old, "--reason", "again", "--dir", str(store.root))
    assert code == 0
    assert "was revoked before" in out
    assert "leaked" in out


def test_cli_refuses_to_revoke_the_broker_current_key(store: KeyStore, run: Run) -> None:
    current = store.signing_key(BROKER).kid
    code, out, err = run("revoke", BROKER, current, "--reason", "oops", "--dir", str(store.root))
    assert (code, out) == (1, "")
    assert "rotate first" in err
    assert store.public_keyset(BROKER).kids() == [current]


@pytest.mark.parametrize(
    "argv",
    [
        # not a principal of the convenant
        ("rotate", "onbekende-partner"),
        # nor for revocation
        ("revoke", "onbekende-partner", "kid", "--reason", "x"),
        # a kid the partner never had
        ("revoke", PARTNER, "no-such-kid", "--reason", "x"),
        # an empty reason
        ("revoke", PARTNER, "kid", "--reason", ""),
    ],
)
def test_cli_refusals_exit_1_and_change_nothing(
    store: KeyStore, run: Run, argv: tuple[str, ...]
) -> None:
    before = {p: store.public_keyset(p).kids() for p in PRINCIPALS}
    code, out, err = run(*argv, "--dir", str(store.root))
    assert (code, out) == (1, "")
    assert err.startswith("ERROR: ")
    assert {p: store.public_keyset(p).kids() for p in PRINCIPALS} == before
    assert not (store.root / "public" / "revoked.json").exists()


def test_cli_revoke_without_a_reason_is_a_usage_error(store: KeyStore, run: Run) -> None:
    with pytest.raises(SystemExit) as exited:
        run("revoke", PARTNER, store.signing_key(PARTNER).kid, "--dir", str(store.root))
    assert exited.value.code == 2
