"""Key material: generation, storage on disk, rotation, revocation, JWKS, trusted-key sets.

What it does: makes key pairs (Ed25519 by default, ES256 on request) for
the broker and every principal the convenant names, writes the private
halves into a git-ignored folder (`keys/dev/` by default) with owner-only
permissions, and publishes the public halves as JWKS. It also holds the
key-encryption key that wraps the per-case data keys (crypto-shredding).

Keys over time (issue 5, point 9). A principal has one *current* private key
and a public *history*: every public key it has had, newest first, minus the
revoked ones. `KeyStore.signing_key` answers the current key,
`KeyStore.public_keyset` the history; the callers (token endpoint, bearer
check, checkpoint verifier, JWKS endpoint) need nothing else to honour a
rotation or a revocation:

* `rotate` makes a new current key and puts its public half first in the
  history. Tokens, checkpoints and assertions signed with an older key keep
  verifying, through the files and through `/.well-known/jwks.json`. The
  rotated-out private key is deleted: nothing ever signs with it again.
* `store_revocation` records a kid in `public/revoked.json` and drops its
  key from the history file. `public_keyset` leaves revoked kids out even
  if a JWKS handed over again still lists them. The broker's current key
  cannot be revoked (everything it signs would stop verifying: rotate first).

Every call reads the files afresh (no cache), so a revocation takes effect
at the next request of every process sharing the folder; a rotation takes
effect for signing when the process that signs next reads `signing_key`
(the broker and the adapters read it once, at start: restart them).

What it does not: fetch keys from anywhere. Keys are pinned per principal by
file; a JWT's `jku`, `x5u` or embedded `jwk` is never followed (style.md §17).
Nor does it guard the files against their owner: the revocation list and the
histories are as trustworthy as the folder's permissions.

Layout of a key folder::

    private/<principal>.pem        PKCS#8 private key: the current one, mode 0600
    private/case-kek.bin           32 random bytes: wraps per-case data keys
    public/<principal>.jwks.json   that principal's public keys, newest first
    public/revoked.json            {principal: [{kid, reason, revoked_at}]}
    public/policy-signer.pem       the policy signer's current public key (for OPA)

Errors raised here, in the tree of `broker.errors`::

    TrustError
    ├── RevocationListError        public/revoked.json unreadable: trust nothing
    └── UntrustedSigningKeyError   the current private key is revoked or unpublished
    NotFoundError
    └── UnknownKeyError            no such key (to rotate or revoke)
    ConflictError
    └── CurrentKeyRevocationError  the broker's current key: rotate first
    InputError
    └── RevocationReasonError      a revocation needs a short, one-line reason
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from broker.clock import rfc3339
from broker.errors import ConflictError, InputError, NotFoundError, TrustError

Algorithm = Literal["EdDSA", "ES256"]
ALLOWED_ALGORITHMS: tuple[Algorithm, ...] = ("EdDSA", "ES256")

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

KEK_BYTES = 32  # AES-256 key-encryption key

# The broker's own key pair (broker.services uses the same name). Its current
# key signs every access token and checkpoint, so it is never revoked.
BROKER_PRINCIPAL = "broker"
REVOCATIONS_FILE = "revoked.json"
# The key that signs policy bundles (broker.policy.bundle). Always ES256: OPA
# verifies bundles with a PEM public key and does not take EdDSA for them in
# every release, so its public key is also written as public/policy-signer.pem
# for `opa run --verification-key`.
POLICY_SIGNER = "policy-signer"
POLICY_SIGNER_ALGORITHM: Algorithm = "ES256"
# Principal ids name files: the convenant's identifier pattern
# (broker/convenant/model.py IDENTIFIER), which has no '/' and no leading '.'.
_PRINCIPAL = re.compile(r"[a-z][a-z0-9_.-]{1,63}")
# Kids and times in the revocation list: thumbprints are 43 characters and
# RFC 3339 times 27; partners' own kids are short too. The bound keeps a
# hand-edited list inert.
MAX_FIELD_CHARS = 200
# A reason is one line for an operator to read back, not a report.
MAX_REASON_CHARS = 200

PUBLIC_FILE_MODE = 0o644
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


class RevocationListError(TrustError):
    """`public/revoked.json` cannot be read as a revocation list; no key is trusted then."""


class UntrustedSigningKeyError(TrustError):
    """A principal's current private key is not among its trusted public keys."""


class UnknownKeyError(NotFoundError):
    """The key to rotate or revoke does not exist."""


class CurrentKeyRevocationError(ConflictError):
    """Revoking the broker's current key would make everything it signs unverifiable."""


class RevocationReasonError(InputError):
    """A revocation's reason is missing, too long or more than one line."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_jwk_of(public_key: PublicKey) -> dict[str, str]:
    """The RFC 7517 JWK members that identify a public key (no `kid`, no `alg`)."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}
    numbers = public_key.public_numbers()
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise TrustError(f"expected a P-256 key, got curve {public_key.curve.name!r}")
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }


def jwk_thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 thumbprint (SHA-256) of a public JWK; used as the `kid`."""
    required = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y")}[jwk["kty"]]
    members = {name: jwk[name] for name in required}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode())
    return _b64url(digest.digest())


@dataclass(frozen=True)
class SigningKey:
    """A private key with the `kid` and algorithm it signs under."""

    kid: str
    alg: Algorithm
    private_key: PrivateKey

    @property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        jwk = public_jwk_of(self.public_key)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


@dataclass(frozen=True)
class TrustedKey:
    kid: str
    alg: Algorithm
    public_key: PublicKey


class PublicKeySet:
    """The pinned public keys of one principal, looked up by `kid`, in the order given."""

    def __init__(self, keys: Iterable[TrustedKey]) -> None:
        self._by_kid = {key.kid: key for key in keys}

    def get(self, kid: object) -> TrustedKey | None:
        if not isinstance(kid, str):
            return None
        return self._by_kid.get(kid)

    def __iter__(self):  # type: ignore[no-untyped-def]  # iterator type is obvious
        return iter(self._by_kid.values())

    def __len__(self) -> int:
        return len(self._by_kid)

    def kids(self) -> list[str]:
        return list(self._by_kid)

    def to_jwks(self) -> dict[str, list[dict[str, str]]]:
        keys = []
        for key in self._by_kid.values():
            keys.append(
                {**public_jwk_of(key.public_key), "kid": key.kid, "alg": key.alg, "use": "sig"}
            )
        return {"keys": keys}


def keyset_from_jwks(jwks: Mapping[str, Any]) -> PublicKeySet:
    """Parse a JWKS, accepting only Ed25519 (EdDSA) and P-256 (ES256) signing keys."""
    try:
        return _keyset_from_jwks(jwks)
    except TrustError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise TrustError(f"malformed JWKS: {type(e).__name__}") from e


def _keyset_from_jwks(jwks: Mapping[str, Any]) -> PublicKeySet:
    trusted: list[TrustedKey] = []
    seen: set[str] = set()
    for jwk in jwks.get("keys", []):
        kty, crv = jwk.get("kty"), jwk.get("crv")
        public_key: PublicKey
        if kty == "OKP" and crv == "Ed25519":
            public_key = ed25519.Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk["x"]))
            alg: Algorithm = "EdDSA"
        elif kty == "EC" and crv == "P-256":
            x = int.from_bytes(_b64url_decode(jwk["x"]), "big")
            y = int.from_bytes(_b64url_decode(jwk["y"]), "big")
            public_key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
            alg = "ES256"
        else:
            raise TrustError(f"expected an Ed25519 or P-256 key, got kty={kty!r} crv={crv!r}")
        kid = jwk.get("kid") or jwk_thumbprint(jwk)
        if kid in seen:
            # Two keys under one kid: which one verifies would depend on
            # their order; a history must name each key once.
            raise TrustError(f"expected each kid once in a JWKS, got {kid!r} twice")
        seen.add(kid)
        trusted.append(TrustedKey(kid=kid, alg=alg, public_key=public_key))
    return PublicKeySet(trusted)


def generate_signing_key(alg: Algorithm = "EdDSA") -> SigningKey:
    private_key: PrivateKey
    if alg == "EdDSA":
        private_key = ed25519.Ed25519PrivateKey.generate()
    elif alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"expected one of {ALLOWED_ALGORITHMS}, got {alg!r}")
    kid = jwk_thumbprint(public_jwk_of(private_key.public_key()))
    return SigningKey(kid=kid, alg=alg, private_key=private_key)


def signing_key_from_pem(pem: bytes) -> SigningKey:
    private_key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        alg: Algorithm = "EdDSA"
    elif isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
        private_key.curve, ec.SECP256R1
    ):
        alg = "ES256"
    else:
        raise TrustError("expected an Ed25519 or P-256 private key")
    kid = jwk_thumbprint(public_jwk_of(private_key.public_key()))
    return SigningKey(kid=kid, alg=alg, private_key=private_key)


# ---- revocations: pure -----------------------------------------------------------------


@dataclass(frozen=True)
class Revocation:
    """One revoked key of a principal: no signature by it is accepted any more."""

    kid: str
    reason: str
    revoked_at: str  # RFC 3339, UTC

    def to_dict(self) -> dict[str, str]:
        return {"kid": self.kid, "reason": self.reason, "revoked_at": self.revoked_at}


Revocations = Mapping[str, Sequence[Revocation]]


def _short_line(value: object, *, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable()


def parse_revocations(document: object) -> dict[str, tuple[Revocation, ...]]:
    """Parse `{principal: [{kid, reason, revoked_at}]}`; raise RevocationListError if malformed."""
    if not isinstance(document, dict):
        raise RevocationListError(f"expected an object, got {type(document).__name__}")
    parsed: dict[str, tuple[Revocation, ...]] = {}
    for principal, records in document.items():
        if not _PRINCIPAL.fullmatch(principal):
            raise RevocationListError(f"expected principal ids as members, got {principal!r}")
        if not isinstance(records, list):
            raise RevocationListError(
                f"expected a list of revocations for {principal!r}, got {type(records).__name__}"
            )
        revocations = []
        for record in records:
            expected = {"kid", "reason", "revoked_at"}
            if not isinstance(record, dict) or set(record) != expected:
                shown = sorted(record) if isinstance(record, dict) else type(record).__name__
                raise RevocationListError(
                    f"expected members {sorted(expected)} for {principal!r}, got {shown!r}"
                )
            for name, limit in (
                ("kid", MAX_FIELD_CHARS),
                ("reason", MAX_REASON_CHARS),
                ("revoked_at", MAX_FIELD_CHARS),
            ):
                if not _short_line(record[name], limit=limit):
                    raise RevocationListError(
                        f"expected {name} of {principal!r} to be a one-line string of at most"
                        f" {limit} characters, got {record[name]!r}"
                    )
            revocations.append(Revocation(**record))
        parsed[principal] = tuple(revocations)
    return parsed


def revocations_document(revocations: Revocations) -> dict[str, list[dict[str, str]]]:
    """The JSON form of a revocation list, principals sorted, records in revocation order."""
    return {
        principal: [record.to_dict() for record in revocations[principal]]
        for principal in sorted(revocations)
        if revocations[principal]
    }


def without_revoked(keys: PublicKeySet, revoked: Iterable[Revocation]) -> PublicKeySet:
    """`keys` less every key whose kid is revoked."""
    gone = {record.kid for record in revoked}
    return PublicKeySet(key for key in keys if key.kid not in gone)


def with_new_current(history: PublicKeySet, key: SigningKey) -> PublicKeySet:
    """The history with `key`'s public half first (newest first), each kid once."""
    new = TrustedKey(kid=key.kid, alg=key.alg, public_key=key.public_key)
    return PublicKeySet([new, *(old for old in history if old.kid != key.kid)])


def verify_revocable(
    *, principal: str, kid: str, history: PublicKeySet, current_kid: str | None
) -> None:
    """Raise unless `kid` may be revoked now: a key in the history, not the broker's current."""
    if history.get(kid) is None:
        raise UnknownKeyError(
            f"expected a kid of {principal!r}'s keys {history.kids()!r}, got {kid!r}"
        )
    if principal == BROKER_PRINCIPAL and kid == current_kid:
        raise CurrentKeyRevocationError(
            f"expected a previous key of the broker, got its current key {kid!r}:"
            " rotate first (`ketenbroker keys rotate broker`), restart, then revoke"
        )


def verify_reason(reason: str) -> None:
    """Raise RevocationReasonError unless `reason` is one printable line of bounded length."""
    if not _short_line(reason, limit=MAX_REASON_CHARS) or not reason.strip():
        raise RevocationReasonError(
            f"expected a one-line reason of 1 to {MAX_REASON_CHARS} characters, got {reason!r}"
        )


# ---- files ------------------------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes, *, mode: int, exclusive: bool = False) -> bool:
    """Put `data` at `path` whole or not at all; readers see the old file or the new one.

    The file is made under a temporary name with `mode` from the start (a
    private key is never readable by others, not even for a moment), then
    renamed over `path`. With `exclusive`, an existing `path` is kept and
    False returned. Replacing unlinks the old file: a rotated-out private
    key is gone from the folder (its blocks are the file system's to reuse;
    no shredding is attempted).
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            try:
                os.link(temporary, path)  # fails if `path` exists: first writer wins
            except FileExistsError:
                return False
            finally:
                os.unlink(temporary)
        else:
            os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_dir(path.parent)
    return True


def _json_bytes(document: object) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode()


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name, value in pairs:
        if name in document:
            # Which copy a parser keeps differs between parsers: refuse both.
            raise ValueError(f"member {name!r} appears twice")
        document[name] = value
    return document


_Stamp = tuple[int, int, int] | None  # (inode, mtime ns, size) of a file, None if missing


def _stamp(path: Path) -> _Stamp:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return (status.st_ino, status.st_mtime_ns, status.st_size)


class KeyStore:
    """A key folder on disk (see the module docstring for its layout and its rules)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # principal -> (file stamps, keyset): parsing a JWKS costs ~0.13 ms and
        # every exchange asks 2-3 times; a stat of both files costs a few µs.
        self._keysets: dict[str, tuple[tuple[_Stamp, _Stamp], PublicKeySet]] = {}
        self._keysets_lock = threading.Lock()

    def _checked(self, principal: str) -> str:
        if not _PRINCIPAL.fullmatch(principal):
            raise TrustError(f"expected a principal id {_PRINCIPAL.pattern!r}, got {principal!r}")
        return principal

    def _private_path(self, principal: str) -> Path:
        return self.root / "private" / f"{self._checked(principal)}.pem"

    def _public_path(self, principal: str) -> Path:
        return self.root / "public" / f"{self._checked(principal)}.jwks.json"

    def _revocations_path(self) -> Path:
        return self.root / "public" / REVOCATIONS_FILE

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the folder's write lock: one writer at a time, so no revocation is lost.

        Readers take no lock; every write is an atomic rename. The lock is
        flock(2) on the public folder itself, so it leaves no file behind.
        """
        public = self.root / "public"
        public.mkdir(parents=True, exist_ok=True)
        (self.root / "private").mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
        fd = os.open(public, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def has(self, principal: str) -> bool:
        return self._private_path(principal).exists()

    # ---- reading ----------------------------------------------------------------

    def _load_private(self, principal: str) -> SigningKey:
        path = self._private_path(principal)
        try:
            return signing_key_from_pem(path.read_bytes())
        except FileNotFoundError as e:
            raise TrustError(
                f"no private key for {principal!r} at {path}; run `ketenbroker keys init`"
            ) from e

    def _history(self, principal: str, *, missing_ok: bool = False) -> PublicKeySet:
        """Every key listed in the principal's JWKS file (revoked ones not yet removed)."""
        path = self._public_path(principal)
        try:
            text = path.read_text()
        except FileNotFoundError as e:
            if missing_ok:
                return PublicKeySet([])
            raise TrustError(f"no public keys for {principal!r} at {path}") from e
        try:
            document = json.loads(text)
        except ValueError as e:
            raise TrustError(f"expected a JWKS in {path}, got invalid JSON: {e}") from e
        return keyset_from_jwks(document)

    def _all_revocations(self) -> dict[str, tuple[Revocation, ...]]:
        path = self._revocations_path()
        try:
            text = path.read_text()
        except FileNotFoundError:
            return {}  # nothing revoked yet
        except OSError as e:
            raise RevocationListError(f"cannot read {path}: {e}") from e
        try:
            document = json.loads(text, object_pairs_hook=_unique_members)
        except ValueError as e:
            raise RevocationListError(f"expected JSON in {path}, got: {e}") from e
        return parse_revocations(document)

    def revocations(self, principal: str) -> tuple[Revocation, ...]:
        """The principal's revoked keys, oldest revocation first."""
        return self._all_revocations().get(self._checked(principal), ())

    def public_keyset(self, principal: str) -> PublicKeySet:
        """The keys to trust for `principal`: its history, newest first, less revoked kids.

        Checked against the files on every call: a revocation holds from the
        next call on. The parsed set is reused while neither the principal's
        JWKS file nor the revocation list has changed; every write is an
        atomic rename, so a change always shows as a new inode.
        """
        stamps = (_stamp(self._public_path(principal)), _stamp(self._revocations_path()))
        with self._keysets_lock:
            cached = self._keysets.get(principal)
        if cached is not None and cached[0] == stamps:
            return cached[1]
        keyset = without_revoked(self._history(principal), self.revocations(principal))
        with self._keysets_lock:
            self._keysets[principal] = (stamps, keyset)
        return keyset

    def signing_key(self, principal: str) -> SigningKey:
        """The principal's current key; refused once revoked (nothing it signs would verify)."""
        key = self._load_private(principal)
        if self.public_keyset(principal).get(key.kid) is None:
            raise UntrustedSigningKeyError(
                f"expected {principal!r}'s current key {key.kid!r} among its trusted public keys,"
                f" got it revoked or unpublished; run `ketenbroker keys rotate {principal}`"
            )
        return key

    def current_kid(self, principal: str) -> str | None:
        """The kid of the principal's current private key, None if there is none."""
        try:
            return self._load_private(principal).kid
        except TrustError:
            return None

    def data_kek(self) -> bytes:
        """The key-encryption key for per-case data keys, made on first use."""
        path = self.root / "private" / "case-kek.bin"
        if not path.exists():
            path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
            # Exclusive: two processes starting at once must not each make
            # (and wrap data keys under) a KEK of their own.
            _write_atomically(
                path, secrets.token_bytes(KEK_BYTES), mode=PRIVATE_FILE_MODE, exclusive=True
            )
        kek = path.read_bytes()
        if len(kek) != KEK_BYTES:
            raise TrustError(f"expected a {KEK_BYTES}-byte key-encryption key, got {len(kek)}")
        return kek

    # ---- writing ----------------------------------------------------------------

    def policy_signer_pem_path(self) -> Path:
        return self.root / "public" / f"{POLICY_SIGNER}.pem"

    def _make_current(self, principal: str, alg: Algorithm) -> SigningKey:
        """Write a new current key; hold the write lock."""
        if principal == POLICY_SIGNER and alg != POLICY_SIGNER_ALGORITHM:
            raise InputError(
                f"expected {POLICY_SIGNER_ALGORITHM} for {POLICY_SIGNER!r} (OPA verifies bundles"
                f" with it), got {alg!r}"
            )
        key = generate_signing_key(alg)
        history = without_revoked(
            self._history(principal, missing_ok=True), self.revocations(principal)
        )
        # Public half first: a crash in between leaves an unused trusted key,
        # never a current key that nobody can verify.
        _write_atomically(
            self._public_path(principal),
            _json_bytes(with_new_current(history, key).to_jwks()),
            mode=PUBLIC_FILE_MODE,
        )
        pem = key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_atomically(self._private_path(principal), pem, mode=PRIVATE_FILE_MODE)
        if principal == POLICY_SIGNER:
            public_pem = key.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            _write_atomically(self.policy_signer_pem_path(), public_pem, mode=PUBLIC_FILE_MODE)
        return key

    def ensure_policy_signer(self) -> list[str]:
        """Make the policy-signer's ES256 key pair unless it exists; [POLICY_SIGNER] if made."""
        with self._writing():
            if self.has(POLICY_SIGNER):
                return []
            self._make_current(POLICY_SIGNER, POLICY_SIGNER_ALGORITHM)
            return [POLICY_SIGNER]

    def create(self, principal: str, alg: Algorithm = "EdDSA") -> SigningKey:
        """Make a new current key pair for `principal`; earlier public keys stay in its history.

        The history is never dropped: checkpoints signed with an earlier
        broker key must stay verifiable (only a revocation removes a key).
        """
        with self._writing():
            return self._make_current(principal, alg)

    def rotate(self, principal: str, *, alg: Algorithm | None = None) -> SigningKey:
        """Replace the current key; the old public key stays trusted, the old private key goes.

        `alg` defaults to the current key's algorithm.
        """
        with self._writing():
            if not self.has(principal):
                raise UnknownKeyError(
                    f"expected a current key of {principal!r} to rotate, got none;"
                    " run `ketenbroker keys init --if-missing`"
                )
            current = self._load_private(principal)
            return self._make_current(principal, alg or current.alg)

    def store_revocation(self, principal: str, kid: str, *, reason: str, now: datetime) -> bool:
        """Revoke `principal`'s key `kid` from now on; True if new, False if already revoked.

        Refuses an unknown kid and the broker's current key. The list is
        written before the history loses the key, so a crash in between
        still leaves the key untrusted.
        """
        verify_reason(reason)
        with self._writing():
            everything = self._all_revocations()
            earlier = everything.get(self._checked(principal), ())
            if any(record.kid == kid for record in earlier):
                return False
            history = self._history(principal)
            verify_revocable(
                principal=principal,
                kid=kid,
                history=history,
                current_kid=self.current_kid(principal),
            )
            record = Revocation(kid=kid, reason=reason, revoked_at=rfc3339(now))
            updated = {**everything, principal: (*earlier, record)}
            _write_atomically(
                self._revocations_path(),
                _json_bytes(revocations_document(updated)),
                mode=PUBLIC_FILE_MODE,
            )
            # Out of the file too, so a copy of the file (`audit verify
            # --jwks public/broker.jwks.json`) no longer trusts the key.
            _write_atomically(
                self._public_path(principal),
                _json_bytes(without_revoked(history, (record,)).to_jwks()),
                mode=PUBLIC_FILE_MODE,
            )
            return True

    def init(
        self, principals: Iterable[str], *, alg: Algorithm = "EdDSA", if_missing: bool = True
    ) -> list[str]:
        """Create keys for every principal (skipping existing ones when `if_missing`)."""
        made = []
        for principal in principals:
            if if_missing and self.has(principal):
                continue
            self.create(principal, alg)
            made.append(principal)
        self.data_kek()
        return made
