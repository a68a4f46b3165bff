"""Keys over time over real HTTP: rotation keeps history verifiable, revocation bites at once.

The shared `stack` runs on the session's key folder, which every other
module trusts; rotating or revoking there would change their world. So each
test here copies the folder and starts a stack of its own on the copy
(as tests/e2e/conftest.py does), and rotates and revokes with the CLI's
`KeyStore` while the broker runs: no restart, no reload, the files only.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from adapters.sdk.client import BrokerClient, TokenRequestError
from broker.audit.checkpoint import (
    Checkpoint,
    CheckpointSignatureError,
    verify_checkpoint,
)
from broker.audit.merkle import verify_consistency
from broker.clock import SystemClock, rfc3339
from broker.keys import KeyStore, keyset_from_jwks
from broker.settings import MAX_ACCESS_TOKEN_TTL_SECONDS
from broker.stack import LocalStack, start_local_stack
from tests.e2e.conftest import BACKENDS, FG, GEMEENTE, audit_entries, jwks

pytestmark = pytest.mark.e2e

BROKER = "broker"
CHECKPOINT = "/v1/audit/checkpoint"


@pytest.fixture
def keys(keystore: KeyStore, tmp_path: Path) -> KeyStore:
    """A copy of the session's key folder, ours to rotate and revoke in."""
    copy = tmp_path / "keys"
    shutil.copytree(keystore.root, copy)
    return KeyStore(copy)


def _start(
    keys: KeyStore,
    workdir: Path,
    *,
    backend: str = "embedded",
    postgres_dsn: str | None = None,
    broker_port: int | None = None,
) -> LocalStack:
    base: dict[str, Any] = {
        "keys_dir": keys.root,
        "policy_engine": "embedded",
        "sqlite_path": workdir / "ketenbroker.sqlite3",
        "redis_namespace": f"kbtest:{secrets.token_hex(6)}",
        **BACKENDS[backend],
    }
    if postgres_dsn is not None:
        base["postgres_dsn"] = postgres_dsn
    return start_local_stack(base=base, broker_port=broker_port)


def _client(stack: LocalStack, keys: KeyStore, principal: str, **kw: Any) -> BrokerClient:
    key = kw.pop("signing_key", None) or keys.signing_key(principal)
    return BrokerClient(base_url=stack.broker_url, client_id=principal, signing_key=key, **kw)


def _checkpoint(dpo: BrokerClient) -> Checkpoint:
    response = dpo.get(CHECKPOINT)
    assert response.status_code == 200, response.text
    return Checkpoint.from_dict(response.json())


def _log_something(stack: LocalStack) -> None:
    # A call without a token is refused and recorded: the log grows by one.
    assert httpx.get(stack.broker_url + CHECKPOINT).status_code == 401


@pytest.fixture(params=["embedded", "production"])
def partner_stack(
    request: pytest.FixtureRequest, keys: KeyStore, tmp_path: Path, postgres_server_dsn: str
) -> Iterator[LocalStack]:
    with _start(keys, tmp_path, backend=request.param, postgres_dsn=postgres_server_dsn) as stack:
        yield stack


def test_revoked_partner_key_is_refused_at_the_token_endpoint_at_once(
    partner_stack: LocalStack, keys: KeyStore
) -> None:
    stack = partner_stack
    started = rfc3339(SystemClock().now())
    old = keys.signing_key(GEMEENTE)
    with (
        _client(stack, keys, GEMEENTE) as before_rotation,
        _client(stack, keys, FG) as dpo,
    ):
        assert before_rotation.get(CHECKPOINT).status_code == 200  # holds a token now

        new = keys.rotate(GEMEENTE)
        # Rotation: both keys authenticate while the partner switches over.
        with _client(stack, keys, GEMEENTE, signing_key=old) as still_old:
            assert still_old.get(CHECKPOINT).status_code == 200
        with _client(stack, keys, GEMEENTE) as rotated:
            assert rotated.get(CHECKPOINT).status_code == 200

            assert keys.store_revocation(
                GEMEENTE, old.kid, reason="e2e: key leaked", now=SystemClock().now()
            )
            # At once: the running broker reads the folder on every request.
            with (
                _client(stack, keys, GEMEENTE, signing_key=old) as revoked,
                pytest.raises(TokenRequestError) as refused,
            ):
                revoked.token()
            assert (refused.value.status, refused.value.error) == (401, "invalid_client")
            # The partner's new key is not touched by it.
            assert rotated.get(CHECKPOINT).status_code == 200

        # An access token obtained before the revocation lives out its
        # (at most 300 s) life: keys/README.md says so.
        assert MAX_ACCESS_TOKEN_TTL_SECONDS == 300
        assert before_rotation.get(CHECKPOINT).status_code == 200

        # The refusal is in the audit log (the production backends share
        # one database between modules: look from this test's start on).
        # Other refusals (a DPoP nonce challenge, say) may sit beside it.
        refusals = [
            reason
            for entry in audit_entries(dpo, partner=GEMEENTE, **{"from": started})
            if entry["kind"] == "security_event" and entry["event"] == "token_refused"
            for reason in entry["reasons"]
            if reason["code"] == "invalid_client"
        ]
        assert len(refusals) == 1
        assert old.kid in refusals[0]["detail"]
        assert new.kid != old.kid


def test_broker_rotation_keeps_old_tokens_and_checkpoints_verifiable(
    keys: KeyStore, tmp_path: Path
) -> None:
    old = keys.signing_key(BROKER)
    first = _start(keys, tmp_path)
    # The restarted broker answers at the same URL, so it is the same issuer
    # and the tokens of the first one are meant for it.
    port = urlsplit(first.broker_url).port
    gemeente = _client(first, keys, GEMEENTE)
    dpo = _client(first, keys, FG)
    stopped = False
    try:
        assert gemeente.get(CHECKPOINT).status_code == 200
        issued_before = gemeente.token()
        assert jwt.get_unverified_header(issued_before)["kid"] == old.kid
        _log_something(first)
        kept = _checkpoint(dpo)
        assert (kept.key_id, kept.size > 0) == (old.kid, True)

        new = keys.rotate(BROKER)
        # The JWKS endpoint serves the history at once, newest first.
        assert [jwk["kid"] for jwk in jwks(first)["keys"]] == [new.kid, old.kid]
        first.stop()
        stopped = True

        with _start(keys, tmp_path, broker_port=port) as second:
            assert second.broker_url == first.broker_url
            # A token the first broker issued still opens the door...
            assert gemeente.token() == issued_before
            assert gemeente.get(CHECKPOINT).status_code == 200
            # ...while new tokens and checkpoints carry the new kid.
            with _client(second, keys, GEMEENTE) as fresh:
                assert jwt.get_unverified_header(fresh.token())["kid"] == new.kid
            _log_something(second)
            latest = _checkpoint(dpo)
            assert latest.key_id == new.kid

            # The DPO checks the old checkpoint with the JWKS the broker
            # serves now, and that the log since then only grew.
            served = keyset_from_jwks(jwks(second))
            verify_checkpoint(kept, keys=served)
            verify_checkpoint(latest, keys=served)
            proof = dpo.get(
                "/v1/audit/proofs/consistency",
                params={"first": kept.size, "second": latest.size},
            ).json()["proof"]
            verify_consistency(
                first=kept.size,
                second=latest.size,
                first_root=bytes.fromhex(kept.root_hash),
                second_root=bytes.fromhex(latest.root_hash),
                proof=[bytes.fromhex(node) for node in proof],
            )

            # Revoking the old broker key ends the old token at once...
            keys.store_revocation(BROKER, old.kid, reason="e2e: retired", now=SystemClock().now())
            assert gemeente.get(CHECKPOINT).status_code == 401
            # ...the client fetches a token under the new key and goes on...
            assert gemeente.get(CHECKPOINT).status_code == 200
            assert jwt.get_unverified_header(gemeente.token())["kid"] == new.kid
            # ...and the JWKS no longer vouches for what the old key signed.
            assert [jwk["kid"] for jwk in jwks(second)["keys"]] == [new.kid]
            with pytest.raises(CheckpointSignatureError):
                verify_checkpoint(kept, keys=keyset_from_jwks(jwks(second)))
    finally:
        gemeente.close()
        dpo.close()
        if not stopped:
            first.stop()
