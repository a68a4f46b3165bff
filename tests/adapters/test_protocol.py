"""The broker↔adapter wire protocol: call tokens, answer signatures, message shapes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from broker.adapter_protocol import (
    CALL_TOKEN_LEEWAY_SECONDS,
    CALL_TOKEN_REPLAY_TTL_SECONDS,
    CALL_TOKEN_TTL_SECONDS,
    CALL_TOKEN_TYPE,
    MAX_ANSWER_BYTES,
    SPECIAL_CATEGORIES,
    AdapterAnswer,
    AdapterQuery,
    DataCategory,
    body_sha256,
    sign_adapter_call,
    sign_answer,
    verify_adapter_call,
    verify_answer,
    verify_answer_document,
)
from broker.errors import AdapterTrustError
from broker.keys import KeyStore, SigningKey, generate_signing_key
from tests.adapters.helpers import ISSUER, MARCO, make_query

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ADAPTER = "politie-lekstroom"
BODY = make_query("politie.meldingen", MARCO).to_body()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    issued_at = int(NOW.timestamp())
    claims = {
        "iss": ISSUER,
        "sub": "broker",
        "aud": ADAPTER,
        "iat": issued_at,
        "exp": issued_at + CALL_TOKEN_TTL_SECONDS,
        "jti": "jti-1",
        "body_sha256": body_sha256(BODY),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _forge(key: SigningKey, claims: dict[str, Any], **header: Any) -> str:
    """A token signed by `key` with a hand-picked header (for attacks pyjwt would not make)."""
    headers = {"kid": key.kid, "typ": CALL_TOKEN_TYPE, **header}
    return jwt.encode(claims, key.private_key, algorithm=key.alg, headers=headers)


def _verify(token: str, keystore: KeyStore, *, body: bytes = BODY, now: datetime = NOW) -> Any:
    return verify_adapter_call(
        token,
        broker_keys=keystore.public_keyset("broker"),
        issuer=ISSUER,
        adapter_partner=ADAPTER,
        body=body,
        now=now,
    )


def _sign(keystore: KeyStore, *, adapter: str = ADAPTER, body: bytes = BODY) -> str:
    return sign_adapter_call(
        key=keystore.signing_key("broker"),
        issuer=ISSUER,
        adapter_partner=adapter,
        body=body,
        now=NOW,
    )


# --- call token ---------------------------------------------------------------------


def test_call_token_verifies_for_its_adapter_and_body(keystore: KeyStore) -> None:
    call = _verify(_sign(keystore), keystore)
    assert call.expires_at == NOW + timedelta(seconds=CALL_TOKEN_TTL_SECONDS)
    assert call.jti


def test_call_token_header_and_claims_have_the_documented_shape(keystore: KeyStore) -> None:
    token = _sign(keystore)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["typ"] == "kb-adapter-call+jwt"
    assert header["alg"] in {"EdDSA", "ES256"}
    assert header["kid"] == keystore.signing_key("broker").kid
    assert set(claims) == {"iss", "sub", "aud", "iat", "exp", "jti", "body_sha256"}
    assert claims["sub"] == "broker"
    assert claims["exp"] - claims["iat"] == CALL_TOKEN_TTL_SECONDS
    assert claims["body_sha256"] == _b64(hashlib.sha256(BODY).digest())


def test_every_call_token_has_a_fresh_jti(keystore: KeyStore) -> None:
    assert _verify(_sign(keystore), keystore).jti != _verify(_sign(keystore), keystore).jti


def test_call_token_for_another_adapter_is_rejected(keystore: KeyStore) -> None:
    with pytest.raises(AdapterTrustError, match="aud"):
        _verify(_sign(keystore, adapter="gemeente-lekstroom"), keystore)


def test_call_token_bound_to_another_body_is_rejected(keystore: KeyStore) -> None:
    tampered = BODY.replace(b"Marco de Wit", b"Sanne Bakker")
    assert tampered != BODY
    with pytest.raises(AdapterTrustError, match="body_sha256"):
        _verify(_sign(keystore), keystore, body=tampered)


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        # last moment inside exp + leeway
        (CALL_TOKEN_TTL_SECONDS + CALL_TOKEN_LEEWAY_SECONDS - 1, True),
        # exp + leeway has passed
        (CALL_TOKEN_TTL_SECONDS + CALL_TOKEN_LEEWAY_SECONDS, False),
        # an hour later
        (3600, False),
        # the verifier's clock is behind by less than the leeway
        (-CALL_TOKEN_LEEWAY_SECONDS, True),
        # issued further in the future than the leeway allows
        (-CALL_TOKEN_LEEWAY_SECONDS - 1, False),
    ],
)
def test_call_token_is_accepted_only_inside_its_lifetime(
    keystore: KeyStore, offset: int, accepted: bool
) -> None:
    token = _sign(keystore)
    at = NOW + timedelta(seconds=offset)
    if accepted:
        _verify(token, keystore, now=at)
    else:
        with pytest.raises(AdapterTrustError):
            _verify(token, keystore, now=at)


def test_replay_window_outlives_every_acceptable_moment() -> None:
    # Earliest acceptance: iat - leeway; latest: exp + leeway (exclusive).
    assert CALL_TOKEN_REPLAY_TTL_SECONDS >= CALL_TOKEN_TTL_SECONDS + 2 * CALL_TOKEN_LEEWAY_SECONDS


def test_long_lived_call_token_is_rejected(keystore: KeyStore) -> None:
    claims = _claims(exp=int(NOW.timestamp()) + 3600)
    with pytest.raises(AdapterTrustError, match="lifetime"):
        _verify(_forge(keystore.signing_key("broker"), claims), keystore)


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"iss": "https://evil.example"}, "another issuer"),
        ({"sub": "politie-lekstroom"}, "a partner posing as the broker"),
        ({"body_sha256": None}, "not bound to any body"),
        ({"jti": None}, "no jti to replay-check"),
        ({"exp": None}, "never expires"),
        ({"iat": True, "exp": True}, "booleans as times"),
    ],
)
def test_call_token_with_wrong_or_missing_claims_is_rejected(
    keystore: KeyStore, overrides: dict[str, Any], why: str
) -> None:
    token = _forge(keystore.signing_key("broker"), _claims(**overrides))
    with pytest.raises(AdapterTrustError):
        _verify(token, keystore)


def test_call_token_signed_by_a_partner_key_is_rejected(keystore: KeyStore) -> None:
    partner_key = keystore.signing_key("gemeente-lekstroom")
    with pytest.raises(AdapterTrustError, match="kid"):
        _verify(_forge(partner_key, _claims()), keystore)


def test_call_token_claiming_the_broker_kid_with_another_key_is_rejected(
    keystore: KeyStore,
) -> None:
    impostor = generate_signing_key()
    token = _forge(impostor, _claims(), kid=keystore.signing_key("broker").kid)
    with pytest.raises(AdapterTrustError, match="signature"):
        _verify(token, keystore)


def test_unsigned_call_token_alg_none_is_rejected(keystore: KeyStore) -> None:
    header = {"alg": "none", "typ": CALL_TOKEN_TYPE, "kid": keystore.signing_key("broker").kid}
    token = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}."
    with pytest.raises(AdapterTrustError):
        _verify(token, keystore)


def test_hs256_call_token_keyed_with_the_public_key_is_rejected(keystore: KeyStore) -> None:
    # Algorithm confusion: the attacker knows the broker's public key.
    broker = keystore.signing_key("broker")
    secret = broker.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": CALL_TOKEN_TYPE, "kid": broker.kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(AdapterTrustError):
        _verify(f"{signing_input}.{_b64(mac)}", keystore)


@pytest.mark.parametrize(
    "header",
    [
        # the attacker's own key, embedded
        {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}},
        # a URL to fetch keys from
        {"jku": "https://evil.example/jwks.json"},
        {"x5u": "https://evil.example/cert.pem"},
        # an extension we do not understand, marked critical
        {"crit": ["exp"]},
    ],
    ids=["jwk", "jku", "x5u", "crit"],
)
def test_call_token_with_key_carrying_or_critical_header_is_rejected(
    keystore: KeyStore, header: dict[str, Any]
) -> None:
    # Signed with the real broker key: the header alone must be enough to refuse.
    token = _forge(keystore.signing_key("broker"), _claims(), **header)
    with pytest.raises(AdapterTrustError):
        _verify(token, keystore)


def test_call_token_with_embedded_jwk_of_its_own_signer_is_rejected(keystore: KeyStore) -> None:
    impostor = generate_signing_key()
    token = _forge(impostor, _claims(), jwk=impostor.public_jwk())
    with pytest.raises(AdapterTrustError):
        _verify(token, keystore)


def test_call_token_of_another_type_is_rejected(keystore: KeyStore) -> None:
    # An access token or client assertion (typ JWT) must not double as a call token.
    token = _forge(keystore.signing_key("broker"), _claims(), typ="JWT")
    with pytest.raises(AdapterTrustError, match="typ"):
        _verify(token, keystore)


def test_oversized_call_token_is_rejected_unparsed(keystore: KeyStore) -> None:
    token = _forge(keystore.signing_key("broker"), _claims(padding="x" * 9000))
    with pytest.raises(AdapterTrustError, match="bytes"):
        _verify(token, keystore)


# --- answer signature ----------------------------------------------------------------


def _answer() -> dict[str, Any]:
    return {
        "exchange": "ex_1",
        "query": "politie.meldingen",
        "subject_known": True,
        "fields": {
            "meldingen_aantal": {"category": "nuisance", "value": 7},
            "strafrechtelijke_antecedenten": {
                "category": "criminal",
                "value": [{"datum": "2019-04-02", "feit": "Opiumwet"}],
            },
        },
    }


def test_answer_signature_verifies_with_the_providers_key(keystore: KeyStore) -> None:
    signature = sign_answer(key=keystore.signing_key(ADAPTER), answer=_answer())
    verify_answer(signature=signature, answer=_answer(), keys=keystore.public_keyset(ADAPTER))


def test_answer_signature_is_detached_with_the_documented_header(keystore: KeyStore) -> None:
    signature = sign_answer(key=keystore.signing_key(ADAPTER), answer=_answer())
    header_part, payload_part, signature_part = signature.split(".")
    assert payload_part == ""
    assert signature_part
    header = json.loads(base64.urlsafe_b64decode(header_part + "=" * (-len(header_part) % 4)))
    assert header == {
        "alg": keystore.signing_key(ADAPTER).alg,
        "kid": keystore.signing_key(ADAPTER).kid,
        "typ": "kb-answer+jws",
    }


def test_answer_signature_ignores_member_order(keystore: KeyStore) -> None:
    # JCS: the broker re-serialises what it parsed; order must not matter.
    signature = sign_answer(key=keystore.signing_key(ADAPTER), answer=_answer())
    reordered = dict(reversed(list(_answer().items())))
    verify_answer(signature=signature, answer=reordered, keys=keystore.public_keyset(ADAPTER))


def _tamper_value(answer: dict[str, Any]) -> None:
    answer["fields"]["meldingen_aantal"]["value"] = 1


def _tamper_category(answer: dict[str, Any]) -> None:
    # relabel a criminal field as ordinary, so a filter by category would pass it
    answer["fields"]["strafrechtelijke_antecedenten"]["category"] = "nuisance"


def _rename_field(answer: dict[str, Any]) -> None:
    answer["fields"]["meldingen"] = answer["fields"].pop("meldingen_aantal")


def _add_field(answer: dict[str, Any]) -> None:
    answer["fields"]["lopend_onderzoek"] = {"category": "investigation", "value": False}


def _drop_field(answer: dict[str, Any]) -> None:
    del answer["fields"]["strafrechtelijke_antecedenten"]


def _add_member(answer: dict[str, Any]) -> None:
    answer["note"] = "extra"


def _flip_subject_known(answer: dict[str, Any]) -> None:
    answer["subject_known"] = False


@pytest.mark.parametrize(
    "tamper",
    [
        _tamper_value,
        _tamper_category,
        _rename_field,
        _add_field,
        _drop_field,
        _add_member,
        _flip_subject_known,
    ],
)
def test_tampered_answer_is_rejected(keystore: KeyStore, tamper: Any) -> None:
    signature = sign_answer(key=keystore.signing_key(ADAPTER), answer=_answer())
    answer = _answer()
    tamper(answer)
    with pytest.raises(AdapterTrustError):
        verify_answer(signature=signature, answer=answer, keys=keystore.public_keyset(ADAPTER))


def test_answer_signed_by_another_partner_is_rejected(keystore: KeyStore) -> None:
    # The gemeente cannot speak for the police, even with a valid key of its own.
    signature = sign_answer(key=keystore.signing_key("gemeente-lekstroom"), answer=_answer())
    with pytest.raises(AdapterTrustError, match="kid"):
        verify_answer(signature=signature, answer=_answer(), keys=keystore.public_keyset(ADAPTER))


def test_answer_signed_with_a_look_alike_kid_is_rejected(keystore: KeyStore) -> None:
    impostor = generate_signing_key()
    forged = SigningKey(
        kid=keystore.signing_key(ADAPTER).kid, alg="EdDSA", private_key=impostor.private_key
    )
    signature = sign_answer(key=forged, answer=_answer())
    with pytest.raises(AdapterTrustError, match="signature"):
        verify_answer(signature=signature, answer=_answer(), keys=keystore.public_keyset(ADAPTER))


def test_answer_signature_with_attached_payload_is_rejected(keystore: KeyStore) -> None:
    detached = sign_answer(key=keystore.signing_key(ADAPTER), answer=_answer())
    header_part, _, signature_part = detached.split(".")
    attached = f"{header_part}.{_b64(b'{}')}.{signature_part}"
    with pytest.raises(AdapterTrustError, match="detached"):
        verify_answer(signature=attached, answer=_answer(), keys=keystore.public_keyset(ADAPTER))


def test_call_token_cannot_stand_in_for_an_answer_signature(keystore: KeyStore) -> None:
    # Same key family, other typ: a JWS of one kind is never accepted as another.
    key = keystore.signing_key(ADAPTER)
    token = jwt.encode({"a": 1}, key.private_key, algorithm=key.alg, headers={"kid": key.kid})
    header_part, _, signature_part = token.split(".")
    with pytest.raises(AdapterTrustError, match="typ"):
        verify_answer(
            signature=f"{header_part}..{signature_part}",
            answer=_answer(),
            keys=keystore.public_keyset(ADAPTER),
        )


def test_answer_document_is_parsed_verified_and_bound_to_its_exchange(
    keystore: KeyStore,
) -> None:
    document = json.dumps(_answer()).encode()
    signature = sign_answer(key=keystore.signing_key(ADAPTER), answer=_answer())
    keys = keystore.public_keyset(ADAPTER)
    answer = verify_answer_document(
        document, signature=signature, keys=keys, exchange="ex_1", query="politie.meldingen"
    )
    assert answer.fields["strafrechtelijke_antecedenten"].category is DataCategory.criminal
    # A validly signed answer to one exchange replayed into another.
    with pytest.raises(AdapterTrustError, match="expected an answer to"):
        verify_answer_document(
            document, signature=signature, keys=keys, exchange="ex_2", query="politie.meldingen"
        )


@pytest.mark.parametrize(
    "raw",
    [
        # two readings of one member: which did the adapter sign?
        b'{"exchange": "ex_1", "exchange": "ex_2"}',
        # not JSON per RFC 8259
        b'{"exchange": NaN}',
        b"[1, 2]",
        b"\xff\xfe",
        # beyond the size bound
        b" " * (MAX_ANSWER_BYTES + 1),
    ],
    ids=["duplicate-member", "nan", "array", "not-utf8", "oversized"],
)
def test_malformed_answer_document_is_rejected(keystore: KeyStore, raw: bytes) -> None:
    signature = sign_answer(key=keystore.signing_key(ADAPTER), answer=_answer())
    with pytest.raises(AdapterTrustError):
        verify_answer_document(
            raw,
            signature=signature,
            keys=keystore.public_keyset(ADAPTER),
            exchange="ex_1",
            query="politie.meldingen",
        )


def test_answer_with_unknown_category_is_rejected_even_when_signed(keystore: KeyStore) -> None:
    answer = _answer()
    answer["fields"]["meldingen_aantal"]["category"] = "gossip"
    signature = sign_answer(key=keystore.signing_key(ADAPTER), answer=answer)
    with pytest.raises(AdapterTrustError, match="protocol"):
        verify_answer_document(
            json.dumps(answer).encode(),
            signature=signature,
            keys=keystore.public_keyset(ADAPTER),
            exchange="ex_1",
            query="politie.meldingen",
        )


# --- message shapes --------------------------------------------------------------------


def _query_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(make_query("politie.meldingen", MARCO).to_body())
    return document


def test_query_names_no_requester() -> None:
    # contract.md: the provider never learns who asked.
    document = _query_document()
    assert set(document) == {
        "exchange", "query", "case", "subject", "address", "period", "fields"
    }  # fmt: skip
    document["requester"] = {"partner": "gemeente-lekstroom"}
    with pytest.raises(ValidationError):
        AdapterQuery.model_validate(document)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("subject", "role"), "casemanager"),  # not a subject role
        (("address", "huisnummer"), "12"),  # a string where a number belongs
        (("address", "postcode"), "4101AB; DROP"),  # not a postcode
        (("query",), "../politie"),  # not an exchange type id
        (("period",), {"from": "2026-01-01", "to": "2025-01-01"}),  # ends before it starts
        (("subject", "extra"), "x"),  # unknown member
    ],
)
def test_malformed_query_is_rejected(path: tuple[str, ...], value: Any) -> None:
    document = _query_document()
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(ValidationError):
        AdapterQuery.model_validate_json(json.dumps(document))


def test_query_period_uses_from_and_to_on_the_wire() -> None:
    query = make_query("politie.meldingen", MARCO, period=(date(2025, 1, 1), date(2025, 12, 31)))
    assert json.loads(query.to_body())["period"] == {"from": "2025-01-01", "to": "2025-12-31"}


def test_answer_rejects_unknown_members() -> None:
    with pytest.raises(ValidationError):
        AdapterAnswer.model_validate({**_answer(), "requester": "gemeente-lekstroom"})


def test_special_categories_are_exactly_the_ones_that_never_flow() -> None:
    assert {c.value for c in SPECIAL_CATEGORIES} == {
        "health", "criminal", "financial", "ethnicity", "religion", "political",
        "trade_union", "genetic", "biometric", "sex_life", "investigation",
    }  # fmt: skip
    ordinary = set(DataCategory) - SPECIAL_CATEGORIES
    assert {c.value for c in ordinary} == {
        "identity", "contact", "nuisance", "nuisance_history", "police_deployment",
        "tenancy", "care_relation", "enforcement", "free_text",
    }  # fmt: skip
