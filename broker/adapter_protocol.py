"""The broker↔adapter wire protocol: message shapes, call tokens, answer signatures.

What it does: defines the query the broker sends to a provider's adapter
(`AdapterQuery`), the answer the adapter returns (`AdapterAnswer`), the data
categories every answered field carries (`DataCategory`), and the four pure
functions that authenticate the exchange in both directions:

* broker → adapter: `POST {adapter}/v1/queries` with `Authorization: Bearer
  <call token>`. The call token is a short-lived JWT (`typ`
  `kb-adapter-call+jwt`) signed by the broker's key, addressed (`aud`) to one
  adapter, and bound to the exact request body by `body_sha256`
  (`sign_adapter_call` / `verify_adapter_call`);
* adapter → broker: the answer body plus the header
  `Ketenbroker-Answer-Signature`, a detached JWS (RFC 7515 Appendix F,
  `typ` `kb-answer+jws`) over the RFC 8785 canonical JSON of the answer,
  signed with the adapter partner's own key (`sign_answer` / `verify_answer`);
  `verify_answer_document` is the broker's one call for a received answer:
  size bound, strict JSON, signature, schema, and the echo of the exchange.

What it does not: any I/O. Sending, receiving, replay caching and key loading
happen around these functions (style.md §1); `now` is a parameter (§5).

Why: contract.md demands the adapter be "authenticated both ways". A bearer
token alone would let anyone who sees one call replay it with another body;
binding the token to the body hash and the adapter's partner id, and signing
the answer with the provider's pinned key, means neither a network attacker
nor a different partner can inject or alter what the broker filters and logs.
The provider never learns who asked: the query carries the case, the subject
and the question, not the requester (contract.md, Exchanges).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import jwt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from broker.auth.jose import MAX_JWT_BYTES, b64url_decode_strict, decode_jwt, signature_verifies
from broker.canonical import canonical_json
from broker.errors import AdapterTrustError
from broker.keys import PublicKeySet, SigningKey, TrustedKey

ADAPTER_QUERY_PATH = "/v1/queries"
CALL_TOKEN_TYPE = "kb-adapter-call+jwt"  # noqa: S105  # a JWT `typ`, not a secret
ANSWER_SIGNATURE_TYPE = "kb-answer+jws"
ANSWER_SIGNATURE_HEADER = "Ketenbroker-Answer-Signature"
# The call token's `sub`: the broker is the only principal that calls adapters.
BROKER_SUBJECT = "broker"

# A call is made and answered within the broker's adapter timeout (at most 60 s,
# broker.settings); 30 s of validity is enough for one call and short enough
# that a leaked token is worth little.
CALL_TOKEN_TTL_SECONDS = 30
# Clock skew tolerated between broker and adapter hosts.
CALL_TOKEN_LEEWAY_SECONDS = 5
# How long an adapter must remember a call token's `jti`. A token passes the
# time checks only while iat <= now + leeway and now < exp + leeway, and
# exp - iat <= TTL, so it is acceptable for at most TTL + 2 * leeway seconds
# after the first moment it could be presented; remembering it that long
# closes the replay window (style.md §16).
CALL_TOKEN_REPLAY_TTL_SECONDS = CALL_TOKEN_TTL_SECONDS + 2 * CALL_TOKEN_LEEWAY_SECONDS

# Bounds on untrusted input (style.md §14). A call token holds a header and
# seven short claims, a few hundred bytes; it is refused above
# broker.auth.jose.MAX_JWT_BYTES (8 KiB, one HTTP header line) unparsed.
MAX_CALL_TOKEN_BYTES = MAX_JWT_BYTES
# A detached JWS is a header and a signature (an ES256 or EdDSA signature is
# 64 bytes, 86 in base64url); 2 KiB is ample.
MAX_ANSWER_SIGNATURE_BYTES = 2 * 1024
# A query names one subject, one address and a field list: far under 64 KiB.
MAX_QUERY_BYTES = 64 * 1024
# An answer covers one subject for one question and a bounded period
# (convenant `max_period_days`, at most ten years). Even a long list of
# meldingen with short descriptions is a few tens of KiB; 1 MiB bounds what a
# broken or hostile adapter can make the broker parse, hash and filter.
MAX_ANSWER_BYTES = 1024 * 1024
# More fields than any partner system declares for one question.
MAX_ANSWER_FIELDS = 256
MAX_QUERY_FIELDS = 64

# Header parameters an answer signature may not carry: keys or key pointers
# (keys are pinned per partner, RFC 8725 §3.10), critical extensions we do not
# implement, and RFC 7797's b64 (the payload here is always base64url, Appendix F).
# Call tokens get the same discipline from broker.auth.jose.
_ANSWER_FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit", "b64")
_CALL_TOKEN_CLAIMS = ("iss", "sub", "aud", "iat", "exp", "jti", "body_sha256")

# Identifiers that end up in log lines and URLs: a narrow alphabet keeps
# injection out by construction (as broker.convenant.model.IDENTIFIER).
_REFERENCE = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_FIELD_NAME = r"^[a-z][a-z0-9_]{0,63}$"
_EXCHANGE_TYPE = r"^[a-z]+\.[a-z_]+$"


class DataCategory(StrEnum):
    """What kind of personal data a field holds; decides whether it may flow at all."""

    # Ordinary categories: may flow when the convenant lists the field (R1).
    identity = "identity"
    contact = "contact"
    nuisance = "nuisance"
    nuisance_history = "nuisance_history"
    police_deployment = "police_deployment"
    tenancy = "tenancy"
    care_relation = "care_relation"
    enforcement = "enforcement"
    free_text = "free_text"
    # Special categories: never flow (R2; AVG art. 9 and 10, seed 002 §5.2),
    # plus police investigation data (R3, seed 004 §5.3).
    health = "health"
    criminal = "criminal"
    financial = "financial"
    ethnicity = "ethnicity"
    religion = "religion"
    political = "political"
    trade_union = "trade_union"
    genetic = "genetic"
    biometric = "biometric"
    sex_life = "sex_life"
    investigation = "investigation"


SPECIAL_CATEGORIES: frozenset[DataCategory] = frozenset(
    {
        DataCategory.health,
        DataCategory.criminal,
        DataCategory.financial,
        DataCategory.ethnicity,
        DataCategory.religion,
        DataCategory.political,
        DataCategory.trade_union,
        DataCategory.genetic,
        DataCategory.biometric,
        DataCategory.sex_life,
        DataCategory.investigation,
    }
)
ORDINARY_CATEGORIES: frozenset[DataCategory] = frozenset(DataCategory) - SPECIAL_CATEGORIES


# --- message shapes ---------------------------------------------------------------


class _Strict(BaseModel):
    # Unknown members are a protocol error in both directions (contract.md, General).
    model_config = ConfigDict(extra="forbid", frozen=True)


SubjectRole = Literal["overlastgever", "melder", "omwonende"]
FieldName = Annotated[str, Field(pattern=_FIELD_NAME)]


class QuerySubject(_Strict):
    """The person the question is about, as the case register knows them."""

    ref: StrictStr = Field(pattern=_REFERENCE)
    role: SubjectRole
    name: StrictStr = Field(min_length=1, max_length=200)
    birth_date: date


class QueryAddress(_Strict):
    """The dwelling the case is tied to (woonoverlast is tied to a dwelling, seed 002 §2.1)."""

    postcode: StrictStr = Field(pattern=r"^[1-9][0-9]{3} ?[A-Z]{2}$")
    huisnummer: StrictInt = Field(ge=1, le=99999)
    toevoeging: StrictStr | None = Field(default=None, max_length=10)
    plaats: StrictStr = Field(min_length=1, max_length=100)


class QueryPeriod(_Strict):
    """An inclusive date range; the broker has bounded it by `max_period_days`."""

    # `from` is a Python keyword: the attribute is `from_`, the wire name is
    # always `from`, whichever way the model is dumped.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True
    )

    from_: date = Field(alias="from")
    to: date

    @model_validator(mode="after")
    def _ordered(self) -> QueryPeriod:
        if self.to < self.from_:
            raise ValueError(f"period ends ({self.to}) before it starts ({self.from_})")
        return self

    def contains(self, day: date) -> bool:
        return self.from_ <= day <= self.to


class AdapterQuery(_Strict):
    """The body of `POST /v1/queries`. Names no requester (contract.md, Exchanges)."""

    exchange: StrictStr = Field(pattern=_REFERENCE)
    query: StrictStr = Field(pattern=_EXCHANGE_TYPE)
    case: StrictStr = Field(pattern=_REFERENCE)
    subject: QuerySubject
    address: QueryAddress
    period: QueryPeriod | None = None
    # The fields the convenant allows for this question. Informative only: the
    # broker filters the answer itself and never trusts the adapter to.
    fields: tuple[FieldName, ...] = Field(max_length=MAX_QUERY_FIELDS)

    def to_body(self) -> bytes:
        """The request body: canonical JSON, so the same query always hashes the same."""
        return canonical_json(self.model_dump(mode="json", by_alias=True))


class AnswerField(_Strict):
    category: DataCategory
    value: JsonValue


class AdapterAnswer(_Strict):
    """The body of the adapter's 200 answer: everything its system says, categorised."""

    exchange: StrictStr = Field(pattern=_REFERENCE)
    query: StrictStr = Field(pattern=_EXCHANGE_TYPE)
    subject_known: StrictBool
    fields: dict[FieldName, AnswerField] = Field(max_length=MAX_ANSWER_FIELDS)

    def to_document(self) -> dict[str, Any]:
        """The JSON document that is signed and sent."""
        return self.model_dump(mode="json", by_alias=True)


# --- helpers ---------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def body_sha256(body: bytes) -> str:
    """base64url(SHA-256(body)), the `body_sha256` claim of a call token."""
    return _b64url(hashlib.sha256(body).digest())


def _trusted_key_for(token: str, *, keys: PublicKeySet, expected_typ: str) -> TrustedKey:
    """Check the protected header and pick the pinned key it names; never a key it carries."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise AdapterTrustError(f"expected a JWS, got an unparsable header: {e}") from e
    # Keys are pinned per principal (broker.keys); a token must not be able to
    # point at, or carry, its own key, nor demand extensions we do not know.
    present = sorted(name for name in _ANSWER_FORBIDDEN_HEADERS if name in header)
    if present:
        raise AdapterTrustError(f"expected no key-carrying or critical headers, got {present}")
    if header.get("typ") != expected_typ:
        raise AdapterTrustError(f"expected typ {expected_typ!r}, got {header.get('typ')!r}")
    trusted = keys.get(header.get("kid"))
    if trusted is None:
        raise AdapterTrustError(f"expected a pinned kid, got {header.get('kid')!r}")
    # The algorithm comes from the pinned key, never from the token (alg
    # confusion, `none`, HS* with a public key as secret).
    if header.get("alg") != trusted.alg:
        raise AdapterTrustError(f"expected alg {trusted.alg!r}, got {header.get('alg')!r}")
    return trusted


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("expected a timezone-aware datetime, got a naive one")
    return moment.astimezone(UTC)


# --- broker → adapter: the call token ----------------------------------------------


@dataclass(frozen=True)
class VerifiedCall:
    """A call token that passed every check; only `verify_adapter_call` makes one."""

    jti: str
    expires_at: datetime


def sign_adapter_call(
    *, key: SigningKey, issuer: str, adapter_partner: str, body: bytes, now: datetime
) -> str:
    """A call token for one request `body` to the adapter of `adapter_partner`."""
    issued_at = int(_as_utc(now).timestamp())
    claims = {
        "iss": issuer,
        "sub": BROKER_SUBJECT,
        "aud": adapter_partner,
        "iat": issued_at,
        "exp": issued_at + CALL_TOKEN_TTL_SECONDS,
        "jti": secrets.token_urlsafe(18),
        "body_sha256": body_sha256(body),
    }
    headers = {"kid": key.kid, "typ": CALL_TOKEN_TYPE}
    return jwt.encode(claims, key.private_key, algorithm=key.alg, headers=headers)


def verify_adapter_call(
    token: str,
    *,
    broker_keys: PublicKeySet,
    issuer: str,
    adapter_partner: str,
    body: bytes,
    now: datetime,
) -> VerifiedCall:
    """Check a call token against the pinned broker keys and the received body.

    Raises AdapterTrustError on any failure; the message is for the adapter's
    operator log and never carries the token itself. Replay is the caller's
    check: store `VerifiedCall.jti` for CALL_TOKEN_REPLAY_TTL_SECONDS.
    """
    # Header discipline, pinned key and alg, signature, iss/aud/sub and
    # presence of every claim: the shared JWT verifier (broker.auth.jose), so
    # adapter calls and client assertions cannot drift apart in their defence.
    claims = decode_jwt(
        token,
        keys=broker_keys,
        issuer=issuer,
        audience=adapter_partner,
        strict_aud=True,
        subject=BROKER_SUBJECT,
        require=_CALL_TOKEN_CLAIMS,
        typ=CALL_TOKEN_TYPE,
        error=AdapterTrustError,
    )
    # Time against the `now` we were given (style.md §5), with this
    # protocol's own, tighter leeway: broker and adapter are both ours.
    issued_at, expires = claims["iat"], claims["exp"]
    # bool is an int subclass; a JSON `true` is not a time (RFC 7519 §2).
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (issued_at, expires)):
        raise AdapterTrustError(f"expected integer iat and exp, got {issued_at!r}, {expires!r}")
    if not 0 < expires - issued_at <= CALL_TOKEN_TTL_SECONDS:
        raise AdapterTrustError(
            f"expected a lifetime of at most {CALL_TOKEN_TTL_SECONDS}s, got {expires - issued_at}s"
        )
    moment = _as_utc(now).timestamp()
    if issued_at > moment + CALL_TOKEN_LEEWAY_SECONDS:
        raise AdapterTrustError(f"expected iat at most now + leeway, got {issued_at!r}")
    if expires <= moment - CALL_TOKEN_LEEWAY_SECONDS:
        raise AdapterTrustError(f"expected exp after now - leeway, got {expires!r}")

    bound = claims["body_sha256"]
    # Constant-time compare: the hash is not secret, but there is no reason to
    # give a timing oracle on anything token-derived.
    expected = body_sha256(body).encode("ascii")
    if not isinstance(bound, str) or not hmac.compare_digest(bound.encode("utf-8"), expected):
        raise AdapterTrustError("expected body_sha256 to match the request body, it does not")
    return VerifiedCall(jti=claims["jti"], expires_at=datetime.fromtimestamp(expires, UTC))


# --- adapter → broker: the answer signature -------------------------------------------


def sign_answer(*, key: SigningKey, answer: Mapping[str, Any]) -> str:
    """Detached JWS (RFC 7515 Appendix F) over the canonical JSON of `answer`."""
    payload = canonical_json(dict(answer))
    headers = {"kid": key.kid, "typ": ANSWER_SIGNATURE_TYPE}
    compact = jwt.api_jws.encode(payload, key.private_key, algorithm=key.alg, headers=headers)
    header_part, _, signature_part = compact.split(".")
    return f"{header_part}..{signature_part}"


def verify_answer(*, signature: str, answer: Mapping[str, Any], keys: PublicKeySet) -> None:
    """Check a detached answer signature against the provider's pinned `keys`.

    The payload is recomputed from `answer` (RFC 8785), so any change to a
    value, a field name or an added member breaks the signature.
    """
    if len(signature.encode("utf-8", "replace")) > MAX_ANSWER_SIGNATURE_BYTES:
        raise AdapterTrustError(
            f"expected an answer signature of at most {MAX_ANSWER_SIGNATURE_BYTES} bytes"
        )
    parts = signature.split(".")
    if len(parts) != 3 or parts[1] != "":
        raise AdapterTrustError("expected a detached JWS of the form header..signature")
    trusted = _trusted_key_for(signature, keys=keys, expected_typ=ANSWER_SIGNATURE_TYPE)
    try:
        payload = canonical_json(dict(answer))
    except (TypeError, ValueError) as e:  # JCS refuses NaN, infinities, non-JSON types
        raise AdapterTrustError(f"answer is not canonicalisable JSON: {e}") from e
    # The header was checked by _trusted_key_for; the payload is ours. Not
    # jwt.decode on the reassembled token: that re-reads a multi-kilobyte
    # payload we just encoded, and was the larger part of this check's cost.
    signature_bytes = b64url_decode_strict(parts[2])
    if signature_bytes is None:
        raise AdapterTrustError("answer signature rejected: expected a base64url signature")
    signing_input = f"{parts[0]}.{_b64url(payload)}".encode("ascii")
    if not signature_verifies(
        signing_input, signature_bytes, key=trusted.public_key, alg=trusted.alg
    ):
        raise AdapterTrustError("answer signature rejected: the signature does not verify")


def _reject_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers may keep different duplicates; one signed document must
    # have one reading (RFC 8259 §4 leaves it open, so we close it).
    document: dict[str, Any] = {}
    for name, value in pairs:
        if name in document:
            raise ValueError(f"duplicate member {name!r}")
        document[name] = value
    return document


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (RFC 8259) and JCS do not.
    raise ValueError(f"expected JSON, got the non-JSON constant {name!r}")


def verify_answer_document(
    raw: bytes,
    *,
    signature: str,
    keys: PublicKeySet,
    exchange: str,
    query: str,
) -> AdapterAnswer:
    """Bound, parse and verify an adapter's answer body for one exchange.

    Checks, in order: size (MAX_ANSWER_BYTES), JSON without duplicate members,
    the detached signature by the provider's pinned `keys`, the schema, and that
    the answer echoes the `exchange` id and `query` type it was asked — so a
    validly signed answer to another exchange cannot be replayed into this one.
    """
    if len(raw) > MAX_ANSWER_BYTES:
        raise AdapterTrustError(f"expected an answer of at most {MAX_ANSWER_BYTES} bytes")
    try:
        document = json.loads(
            raw, object_pairs_hook=_reject_duplicate_members, parse_constant=_reject_constant
        )
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise AdapterTrustError(f"answer is not valid JSON: {e}") from e
    if not isinstance(document, dict):
        raise AdapterTrustError(f"expected a JSON object, got {type(document).__name__}")
    verify_answer(signature=signature, answer=document, keys=keys)
    try:
        answer = AdapterAnswer.model_validate(document)
    except ValidationError as e:
        raise AdapterTrustError(f"answer does not match the protocol: {e}") from e
    if answer.exchange != exchange or answer.query != query:
        raise AdapterTrustError(
            f"expected an answer to {exchange!r}/{query!r},"
            f" got {answer.exchange!r}/{answer.query!r}"
        )
    return answer
