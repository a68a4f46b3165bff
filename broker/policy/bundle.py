"""Signed policy bundles in OPA's format: build, sign, and verify before anything decides.

What it does: turns a `PolicyBundle` (the .rego modules and the data the
broker evaluates, convenant included) into the files of an OPA bundle
(https://www.openpolicyagent.org/docs/management-bundles): every module at its
relative path, every top-level data document at ``<key>/data.json``, and a
``.manifest`` whose ``revision`` is the bundle's content-derived version and
whose ``roots`` cover every package and data key. `sign_bundle_files` adds
``.signatures.json`` in OPA's signature format: ``{"signatures": [JWS]}``, the
compact JWS signed with ES256 by the ``policy-signer`` key, its payload
``{"files": [{"name", "hash", "algorithm": "SHA-256"}], "keyid": "policy-signer"}``
listing every other file of the bundle. `pack_archive` writes the
deterministic ``.tar.gz`` that ``opa run --bundle`` and the broker read.

`verify_bundle_archive` is the only way from bytes to a `PolicyBundle` the
broker serves. It checks what OPA checks with ``--verification-key`` and a
little more: exactly one JWS, signed with ES256 by a trusted policy-signer
key; every file of the archive listed in the payload and every listed file
present; each file's digest equal to the listed one; then a well-formed
manifest whose roots hold every module and data document. Anything else is a
`PolicyBundleError`, and the broker does not start (fail closed).

Digests follow OPA's rules (bundle/hash.go, bundle/verify.go): .rego files
are hashed as bytes; ``data.json`` and ``.manifest`` are parsed and hashed in
a canonical form (object keys sorted, ``{``/``}``/``[``/``]``/``,``/``:``
without spaces, strings and numbers as Go's encoder writes them with HTML
escaping off), so the digest does not depend on whitespace.

What it does not: fetch bundles, or trust the header's ``kid`` for anything
but choosing among the policy-signer's own pinned public keys (`broker.keys`).
It accepts no algorithm but ES256: OPA verifies ES256 bundles with a PEM
public key (``--verification-key``), and one algorithm leaves nothing to
downgrade to.

Why signed: the policy decides what personal data leaves a partner. A
bundle that anyone with write access to a volume could change would make
the audit log's ``policy_version`` a claim, not a fact.

Errors::

    PolicyUnavailableError
    └── PolicyBundleError    the bundle is unsigned, tampered with, or malformed
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import jwt

from broker.errors import PolicyUnavailableError
from broker.keys import POLICY_SIGNER, POLICY_SIGNER_ALGORITHM, PublicKeySet, SigningKey
from broker.policy.engine import PolicyBundle

# The policy-signer principal (`broker.keys`) signs bundles; its name is also
# the key id in the JWS payload: OPA runs with ``--verification-key-id policy-signer``.
SIGNING_ALGORITHM = POLICY_SIGNER_ALGORITHM
HASH_ALGORITHM = "SHA-256"

MANIFEST = ".manifest"
SIGNATURES = ".signatures.json"
DATA_FILE = "data.json"

# Bounds on what an archive may hold. The serving bundle is about 60 KiB in
# ten files (the lexicon is the largest); these leave two orders of magnitude
# and still keep a hostile archive (a gzip bomb, a million entries) from
# exhausting memory before its signature is even read.
MAX_FILES = 256
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_ARCHIVE_BYTES = 32 * 1024 * 1024

_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PACKAGE = re.compile(r"^[ \t]*package[ \t]+([A-Za-z_][A-Za-z0-9_.]*)", re.MULTILINE)


class PolicyBundleError(PolicyUnavailableError):
    """A policy bundle is unsigned, tampered with or malformed: nothing may decide with it."""


# ---- OPA's digest of a file ----------------------------------------------------------


@dataclass(frozen=True)
class _Number:
    """A JSON number as written in the file: OPA hashes the literal (json.Number)."""

    literal: str


def _refuse_constant(name: str) -> Any:
    raise PolicyBundleError(f"expected JSON numbers, got {name}")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            # Which duplicate wins differs between parsers; a signed file must mean one thing.
            raise PolicyBundleError(f"expected unique object keys, got {key!r} twice")
        document[key] = value
    return document


def _parse_json(raw: bytes, *, name: str, literal_numbers: bool) -> Any:
    try:
        text = raw.decode("utf-8")
        if literal_numbers:
            return json.loads(
                text,
                parse_int=_Number,
                parse_float=_Number,
                parse_constant=_refuse_constant,
                object_pairs_hook=_unique_object,
            )
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_object)
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError both
        raise PolicyBundleError(f"expected JSON in {name!r}, got: {e}") from e


_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b"}
_GO_ESCAPES["\f"] = "\\f"


def _go_string(value: str) -> str:
    """`value` as Go's encoding/json writes it with SetEscapeHTML(false) (Go >= 1.22)."""
    out = ['"']
    for char in value:
        code = ord(char)
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif code < 0x20 or code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            # Go replaces a lone surrogate by U+FFFD: the digests would differ.
            raise PolicyBundleError("expected valid Unicode strings, got a lone surrogate")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _canonical(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        yield "{"
        # Go sorts keys bytewise in UTF-8, which is code point order.
        for n, key in enumerate(sorted(value)):
            if n:
                yield ","
            yield _go_string(key)
            yield ":"
            yield from _canonical(value[key])
        yield "}"
    elif isinstance(value, list):
        yield "["
        for n, item in enumerate(value):
            if n:
                yield ","
            yield from _canonical(item)
        yield "]"
    elif isinstance(value, _Number):
        yield value.literal
    elif isinstance(value, str):
        yield _go_string(value)
    elif value is True:
        yield "true"
    elif value is False:
        yield "false"
    elif value is None:
        yield "null"
    else:  # pragma: no cover - json.loads makes nothing else
        raise PolicyBundleError(f"unexpected JSON value of type {type(value).__name__}")


def _is_structured(name: str) -> bool:
    base = PurePosixPath(name).name
    return base in (DATA_FILE, MANIFEST, SIGNATURES)


def file_digest(name: str, raw: bytes) -> str:
    """The hex SHA-256 digest OPA computes for bundle file `name` with contents `raw`."""
    if _is_structured(name):
        document = _parse_json(raw, name=name, literal_numbers=True)
        raw = "".join(_canonical(document)).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()


# ---- building -----------------------------------------------------------------------


def _package_path(name: str, source: str) -> tuple[str, ...]:
    match = _PACKAGE.search(source)
    if match is None:
        raise PolicyBundleError(f"expected a package clause in {name!r}, found none")
    return tuple(match.group(1).split("."))


def _check_member_name(name: str) -> None:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "." in name.split("/"):
        raise PolicyBundleError(f"expected a relative path inside the bundle, got {name!r}")


def _json_file(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, sort_keys=True, allow_nan=False).encode()


def bundle_files(bundle: PolicyBundle) -> dict[str, bytes]:
    """The files of `bundle` as an unsigned OPA bundle: modules, data, `.manifest`."""
    if not bundle.modules:
        raise PolicyBundleError("expected a bundle with Rego modules, got none")
    files: dict[str, bytes] = {}
    roots: set[str] = set()
    for name, source in bundle.modules.items():
        _check_member_name(name)
        if not name.endswith(".rego"):
            raise PolicyBundleError(f"expected a relative .rego path, got {name!r}")
        roots.add(_package_path(name, source)[0])
        files[name] = source.encode("utf-8")
    for key, document in bundle.data.items():
        if not _SEGMENT.fullmatch(key):
            raise PolicyBundleError(f"expected a Rego identifier as data key, got {key!r}")
        roots.add(key)
        files[f"{key}/{DATA_FILE}"] = _json_file(document)
    manifest = {"revision": bundle.version, "roots": sorted(roots), "rego_version": 1}
    files[MANIFEST] = json.dumps(manifest, indent=2).encode() + b"\n"
    return files


def sign_bundle_files(files: Mapping[str, bytes], key: SigningKey) -> bytes:
    """The `.signatures.json` for `files`, signed with the policy-signer's `key`."""
    if key.alg != SIGNING_ALGORITHM:
        raise PolicyBundleError(f"expected an {SIGNING_ALGORITHM} signing key, got {key.alg!r}")
    listed = [
        {"name": name, "hash": file_digest(name, raw), "algorithm": HASH_ALGORITHM}
        for name, raw in sorted(files.items())
        if name != SIGNATURES
    ]
    payload = json.dumps({"files": listed, "keyid": POLICY_SIGNER}, separators=(",", ":"))
    token = jwt.PyJWS().encode(
        payload.encode(),
        key.private_key,
        algorithm=SIGNING_ALGORITHM,
        # kid picks the key among the signer's pinned history (rotation);
        # OPA ignores it when started with --verification-key-id.
        headers={"kid": key.kid, "typ": None},
    )
    return json.dumps({"signatures": [token]}, indent=1).encode() + b"\n"


def pack_archive(files: Mapping[str, bytes]) -> bytes:
    """A gzip'd tar of `files`, byte-for-byte the same for the same files (no times, no owners)."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.USTAR_FORMAT) as archive,
    ):
        for name, raw in sorted(files.items()):
            _check_member_name(name)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(raw), 0o644, 0
            archive.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


def build_signed_archive(bundle: PolicyBundle, key: SigningKey) -> bytes:
    """`bundle` as a signed OPA bundle archive (what `ketenbroker policy bundle` writes)."""
    files = bundle_files(bundle)
    files[SIGNATURES] = sign_bundle_files(files, key)
    return pack_archive(files)


# ---- reading and verifying ----------------------------------------------------------


def unpack_archive(raw: bytes) -> dict[str, bytes]:
    """The regular files of a bundle archive, by name; refuse anything out of bounds."""
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as archive:
            for count, member in enumerate(archive):
                if count >= MAX_FILES:
                    raise PolicyBundleError(f"expected at most {MAX_FILES} archive members")
                if member.isdir():
                    continue
                name = member.name.removeprefix("/")
                if not member.isreg():
                    raise PolicyBundleError(f"expected regular files only, got {name!r}")
                _check_member_name(name)
                if name in files:
                    raise PolicyBundleError(f"expected each file once, got {name!r} twice")
                total += member.size
                if member.size > MAX_FILE_BYTES or total > MAX_ARCHIVE_BYTES:
                    raise PolicyBundleError(
                        f"expected files of at most {MAX_FILE_BYTES} bytes,"
                        f" {MAX_ARCHIVE_BYTES} in all; got more at {name!r}"
                    )
                extracted = archive.extractfile(member)
                if extracted is None:  # pragma: no cover - isreg() members always extract
                    raise PolicyBundleError(f"cannot read {name!r}")
                files[name] = extracted.read(MAX_FILE_BYTES + 1)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise PolicyBundleError(f"expected a .tar.gz policy bundle, got: {e}") from e
    return files


def _signed_listing(signatures: bytes, trusted: PublicKeySet) -> dict[str, str]:
    """name -> digest from `.signatures.json`, once its JWS verifies with a trusted key."""
    document = _parse_json(signatures, name=SIGNATURES, literal_numbers=False)
    tokens = document.get("signatures") if isinstance(document, dict) else None
    if not isinstance(tokens, list) or len(tokens) != 1 or not isinstance(tokens[0], str):
        raise PolicyBundleError(f"expected exactly one JWS in {SIGNATURES}, got {tokens!r:.80}")
    token = tokens[0]
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise PolicyBundleError(f"expected a compact JWS in {SIGNATURES}, got: {e}") from e
    if header.get("alg") != SIGNING_ALGORITHM:
        raise PolicyBundleError(
            f"expected a bundle signed with {SIGNING_ALGORITHM}, got alg {header.get('alg')!r}"
        )
    key = trusted.get(header.get("kid"))
    if key is None or key.alg != SIGNING_ALGORITHM:
        raise PolicyBundleError(
            f"expected a bundle signed by a trusted {POLICY_SIGNER} key {trusted.kids()},"
            f" got kid {header.get('kid')!r}"
        )
    try:
        verified = jwt.PyJWS().decode_complete(
            token, key=key.public_key, algorithms=[SIGNING_ALGORITHM]
        )
    except jwt.PyJWTError as e:
        raise PolicyBundleError(
            f"expected the bundle signature to verify with {POLICY_SIGNER} key {key.kid!r},"
            f" got: {e}"
        ) from e
    payload = _parse_json(verified["payload"], name="signature payload", literal_numbers=False)
    if not isinstance(payload, dict) or payload.get("keyid") != POLICY_SIGNER:
        keyid = payload.get("keyid") if isinstance(payload, dict) else None
        raise PolicyBundleError(f"expected keyid {POLICY_SIGNER!r} in the payload, got {keyid!r}")
    if payload.get("scope") is not None:
        # OPA, started without a scope, refuses a scoped signature ("scope mismatch").
        raise PolicyBundleError(f"expected no scope in the payload, got {payload['scope']!r}")
    listing: dict[str, str] = {}
    for entry in payload.get("files") or []:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("hash"), str)
            and entry.get("algorithm") == HASH_ALGORITHM
        ):
            raise PolicyBundleError(
                f"expected files of {{name, hash, algorithm: {HASH_ALGORITHM}}}, got {entry!r:.120}"
            )
        listing[entry["name"].removeprefix("/")] = entry["hash"]
    return listing


def _verify_digests(files: Mapping[str, bytes], listing: Mapping[str, str]) -> None:
    unsigned = sorted(set(files) - set(listing))
    if unsigned:
        raise PolicyBundleError(
            f"file(s) {unsigned} in the bundle are not covered by its signature"
        )
    missing = sorted(set(listing) - set(files))
    if missing:
        raise PolicyBundleError(f"file(s) {missing} are signed but missing from the bundle")
    for name, raw in sorted(files.items()):
        got = file_digest(name, raw)
        if got != listing[name]:
            raise PolicyBundleError(f"{name}: digest mismatch (signed {listing[name]}, got {got})")


def _under_roots(path: tuple[str, ...], roots: list[tuple[str, ...]]) -> bool:
    return any(path[: len(root)] == root for root in roots)


def _read_manifest(raw: bytes) -> tuple[str, list[tuple[str, ...]]]:
    manifest = _parse_json(raw, name=MANIFEST, literal_numbers=False)
    if not isinstance(manifest, dict):
        raise PolicyBundleError(f"expected a JSON object in {MANIFEST}, got {manifest!r:.80}")
    revision = manifest.get("revision")
    if not isinstance(revision, str) or not revision:
        raise PolicyBundleError(f"expected a non-empty revision in {MANIFEST}, got {revision!r}")
    roots = manifest.get("roots")
    if (
        not isinstance(roots, list)
        or not roots
        or not all(isinstance(root, str) and root for root in roots)
    ):
        raise PolicyBundleError(f"expected a list of roots in {MANIFEST}, got {roots!r:.80}")
    return revision, [tuple(root.split("/")) for root in roots]


def verify_bundle_files(files: Mapping[str, bytes], *, trusted: PublicKeySet) -> PolicyBundle:
    """The bundle `files` hold, once their signature and every digest verify (else raise)."""
    if SIGNATURES not in files:
        raise PolicyBundleError(f"bundle missing {SIGNATURES}: an unsigned bundle is refused")
    listing = _signed_listing(files[SIGNATURES], trusted)
    signed = {name: raw for name, raw in files.items() if name != SIGNATURES}
    _verify_digests(signed, listing)
    if MANIFEST not in signed:
        raise PolicyBundleError(f"bundle missing {MANIFEST}: no revision to record")
    revision, roots = _read_manifest(signed[MANIFEST])
    modules: dict[str, str] = {}
    data: dict[str, Any] = {}
    for name, raw in sorted(signed.items()):
        path = PurePosixPath(name)
        if name == MANIFEST:
            continue
        if path.suffix == ".rego":
            try:
                source = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise PolicyBundleError(f"expected UTF-8 Rego in {name!r}") from e
            if not _under_roots(_package_path(name, source), roots):
                raise PolicyBundleError(f"{name!r}: package outside the manifest roots")
            modules[name] = source
        elif path.name == DATA_FILE:
            _place_data(data, path.parent.parts, name, raw, roots)
        else:
            raise PolicyBundleError(f"expected .rego, data.json or {MANIFEST}, got {name!r}")
    if not modules:
        raise PolicyBundleError("expected Rego modules in the bundle, got none")
    return PolicyBundle(modules=modules, data=data, version=revision)


def _place_data(
    data: dict[str, Any],
    where: tuple[str, ...],
    name: str,
    raw: bytes,
    roots: list[tuple[str, ...]],
) -> None:
    document = _parse_json(raw, name=name, literal_numbers=False)
    if not isinstance(document, dict):
        raise PolicyBundleError(f"expected a JSON object in {name!r}")
    for key in document:
        if not _under_roots((*where, key), roots):
            raise PolicyBundleError(f"{name!r}: data key {key!r} outside the manifest roots")
    node = data
    for segment in where:
        child = node.setdefault(segment, {})
        if not isinstance(child, dict):
            raise PolicyBundleError(f"{name!r} overlaps data of another file")
        node = child
    overlap = sorted(set(node) & set(document))
    if overlap:
        raise PolicyBundleError(f"{name!r} redefines data keys {overlap}")
    node.update(document)


def verify_bundle_archive(raw: bytes, *, trusted: PublicKeySet) -> PolicyBundle:
    """`verify_bundle_files` over the files of a .tar.gz archive."""
    return verify_bundle_files(unpack_archive(raw), trusted=trusted)


def load_signed_bundle(path: Path, *, trusted: PublicKeySet) -> PolicyBundle:
    """Read and verify the bundle archive at `path`; refuse a missing, oversized or bad one."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_ARCHIVE_BYTES + 1)
    except OSError as e:
        raise PolicyBundleError(
            f"expected a signed policy bundle at {path}, got {type(e).__name__}: {e};"
            " build one with `ketenbroker policy bundle`"
        ) from e
    if len(raw) > MAX_ARCHIVE_BYTES:
        raise PolicyBundleError(f"expected a bundle of at most {MAX_ARCHIVE_BYTES} bytes at {path}")
    return verify_bundle_archive(raw, trusted=trusted)
