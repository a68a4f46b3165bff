"""Signed policy bundles: only a bundle whose signature and every digest verify is served.

Each tamper case is one row: the broker (and the OPA stand-in, like OPA with
``--verification-key``) must refuse it with a message naming what broke.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest

from broker.convenant import Convenant, load_convenant
from broker.errors import PolicyUnavailableError
from broker.keys import POLICY_SIGNER, KeyStore, SigningKey, generate_signing_key
from broker.policy.bundle import (
    MANIFEST,
    SIGNATURES,
    PolicyBundleError,
    build_signed_archive,
    bundle_files,
    file_digest,
    pack_archive,
    sign_bundle_files,
    unpack_archive,
    verify_bundle_archive,
    verify_bundle_files,
)
from broker.policy.embedded import EmbeddedPolicyEngine
from broker.policy.engine import PolicyBundle
from broker.policy.inputs import serving_bundle
from broker.policy.opa import OpaPolicyEngine
from broker.services import build_policy_engine
from broker.settings import PROJECT_ROOT, Settings
from tests.support.opa_standin import OpaStandIn

REAL_POLICIES = PROJECT_ROOT / "policies"
EXCHANGE = "ketenbroker/exchange/decision"


@pytest.fixture(scope="module")
def signer_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("signer"))
    store.ensure_policy_signer()
    return store


@pytest.fixture(scope="module")
def signer(signer_keys: KeyStore) -> SigningKey:
    return signer_keys.signing_key(POLICY_SIGNER)


@pytest.fixture(scope="module")
def real_bundle(convenant: Convenant) -> PolicyBundle:
    return serving_bundle(REAL_POLICIES, convenant)


@pytest.fixture(scope="module")
def signed_files(real_bundle: PolicyBundle, signer: SigningKey) -> dict[str, bytes]:
    files = bundle_files(real_bundle)
    files[SIGNATURES] = sign_bundle_files(files, signer)
    return files


def _resigned(files: dict[str, bytes], key: SigningKey) -> dict[str, bytes]:
    unsigned = {name: raw for name, raw in files.items() if name != SIGNATURES}
    return {**unsigned, SIGNATURES: sign_bundle_files(unsigned, key)}


def _without(files: dict[str, bytes], name: str) -> dict[str, bytes]:
    return {other: raw for other, raw in files.items() if other != name}


def test_signed_bundle_round_trips_exactly(
    real_bundle: PolicyBundle, signer: SigningKey, signer_keys: KeyStore
) -> None:
    archive = build_signed_archive(real_bundle, signer)
    loaded = verify_bundle_archive(archive, trusted=signer_keys.public_keyset(POLICY_SIGNER))
    assert loaded == real_bundle


def test_revision_is_derived_from_content(convenant: Convenant) -> None:
    first, again = (
        serving_bundle(REAL_POLICIES, convenant),
        serving_bundle(REAL_POLICIES, convenant),
    )
    assert first.version == again.version
    assert first.version.startswith("sha256:")
    assert bundle_files(first) == bundle_files(again)
    assert pack_archive(bundle_files(first)) == pack_archive(bundle_files(again))
    other = serving_bundle(REAL_POLICIES, convenant.model_copy(update={"version": "other"}))
    assert other.version != first.version


def test_manifest_names_revision_and_roots(signed_files: dict[str, bytes]) -> None:
    manifest = json.loads(signed_files[MANIFEST])
    assert manifest["roots"] == sorted(
        ["ketenbroker", "categories", "convenant", "convenant_index", "lexicon", "rules"]
    )
    assert manifest["revision"].startswith("sha256:")


def test_signature_is_in_opas_format(signed_files: dict[str, bytes], signer: SigningKey) -> None:
    (token,) = json.loads(signed_files[SIGNATURES])["signatures"]
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"]) == ("ES256", signer.kid)
    payload = jwt.PyJWS().decode(token, key=signer.public_key, algorithms=["ES256"])
    claims = json.loads(payload)
    assert claims["keyid"] == POLICY_SIGNER
    listed = {entry["name"]: entry for entry in claims["files"]}
    assert set(listed) == set(signed_files) - {SIGNATURES}
    assert {entry["algorithm"] for entry in listed.values()} == {"SHA-256"}
    # Rego is hashed as bytes, as OPA does.
    rego = listed["exchange.rego"]["hash"]
    assert rego == hashlib.sha256(signed_files["exchange.rego"]).hexdigest()


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        # Keys sorted, no whitespace: OPA's hash does not depend on formatting.
        (b'{ "b": 1,\n  "a": [true, null] }', b'{"a":[true,null],"b":1}'),
        # Go's encoder with HTML escaping off leaves <, > and & alone.
        (b'{"a": "<foo></foo> & x"}', b'{"a":"<foo></foo> & x"}'),
        # Numbers keep the literal of the file (json.Number).
        (b'{"n": 123.4567891111111111111111}', b'{"n":123.4567891111111111111111}'),
        # Non-ASCII stays UTF-8; control characters and U+2028 are escaped.
        (b'{"s": "\\u00eb\\n\\u0001\\u2028"}', '{"s":"ë\\n\\u0001\\u2028"}'.encode()),
    ],
)
def test_json_files_are_hashed_as_opa_hashes_them(raw: bytes, canonical: bytes) -> None:
    assert file_digest("x/data.json", raw) == hashlib.sha256(canonical).hexdigest()
    # A .rego file is bytes, whatever it holds.
    assert file_digest("x.rego", raw) == hashlib.sha256(raw).hexdigest()


def test_reformatted_data_still_verifies(
    signed_files: dict[str, bytes], signer_keys: KeyStore
) -> None:
    pretty = json.dumps(json.loads(signed_files["rules/data.json"]), indent=4).encode()
    files = {**signed_files, "rules/data.json": pretty}
    verify_bundle_files(files, trusted=signer_keys.public_keyset(POLICY_SIGNER))


def _bad_manifest(document: object) -> Callable[[dict[str, bytes], SigningKey], dict[str, bytes]]:
    def make(files: dict[str, bytes], key: SigningKey) -> dict[str, bytes]:
        return _resigned({**files, MANIFEST: json.dumps(document).encode()}, key)

    return make


def _tampered_rego(files: dict[str, bytes], _key: SigningKey) -> dict[str, bytes]:
    source = files["exchange.rego"] + b"\nallow_everything := true\n"
    return {**files, "exchange.rego": source}


def _tampered_data(files: dict[str, bytes], _key: SigningKey) -> dict[str, bytes]:
    data = json.loads(files["categories/data.json"])
    data["extra"] = {"special": False}
    return {**files, "categories/data.json": json.dumps(data).encode()}


def _two_signatures(files: dict[str, bytes], _key: SigningKey) -> dict[str, bytes]:
    (token,) = json.loads(files[SIGNATURES])["signatures"]
    return {**files, SIGNATURES: json.dumps({"signatures": [token, token]}).encode()}


def _signed_with_hs256(files: dict[str, bytes], key: SigningKey) -> dict[str, bytes]:
    # The classic confusion attack: an HMAC "signature" keyed with public material.
    (token,) = json.loads(files[SIGNATURES])["signatures"]
    payload = jwt.PyJWS().decode(token, key=key.public_key, algorithms=["ES256"])
    forged = jwt.PyJWS().encode(payload, b"k" * 32, algorithm="HS256", headers={"kid": key.kid})
    return {**files, SIGNATURES: json.dumps({"signatures": [forged]}).encode()}


def _scoped(files: dict[str, bytes], key: SigningKey) -> dict[str, bytes]:
    unsigned = {name: raw for name, raw in files.items() if name != SIGNATURES}
    listed = [
        {"name": name, "hash": file_digest(name, raw), "algorithm": "SHA-256"}
        for name, raw in unsigned.items()
    ]
    claims = {"files": listed, "keyid": POLICY_SIGNER, "scope": "write"}
    token = jwt.PyJWS().encode(
        json.dumps(claims).encode(), key.private_key, algorithm="ES256", headers={"kid": key.kid}
    )
    return {**unsigned, SIGNATURES: json.dumps({"signatures": [token]}).encode()}


TAMPER_CASES: list[tuple[str, Callable[[dict[str, bytes], SigningKey], dict[str, bytes]], str]] = [
    # A policy module changed after signing.
    ("changed rego", _tampered_rego, r"exchange\.rego: digest mismatch"),
    # Data changed after signing.
    ("changed data", _tampered_data, r"categories/data\.json: digest mismatch"),
    # A module slipped in beside the signed ones.
    (
        "added file",
        lambda f, _k: {**f, "ketenbroker/extra.rego": b"package ketenbroker.extra\n"},
        r"\['ketenbroker/extra\.rego'\] in the bundle are not covered by its signature",
    ),
    # A signed module taken out (a rule that refuses, say).
    (
        "removed file",
        lambda f, _k: _without(f, "disclosure.rego"),
        r"\['disclosure\.rego'\] are signed but missing from the bundle",
    ),
    # Re-signed by a key that is not the pinned policy signer.
    (
        "wrong key",
        lambda f, _k: _resigned(f, generate_signing_key("ES256")),
        r"expected a bundle signed by a trusted policy-signer key .*, got kid",
    ),
    # No signature at all.
    (
        "missing signatures",
        lambda f, _k: _without(f, SIGNATURES),
        r"bundle missing \.signatures\.json",
    ),
    # Signed, but the manifest carries no revision to record.
    ("manifest without revision", _bad_manifest({"roots": ["ketenbroker"]}), r"non-empty revision"),
    # Signed, but the roots do not hold the data documents.
    (
        "manifest roots too narrow",
        _bad_manifest({"revision": "sha256:x", "roots": ["ketenbroker"]}),
        r"outside the manifest roots",
    ),
    # Signed, but the manifest is not an object.
    (
        "manifest not an object",
        _bad_manifest(["revision"]),
        r"expected a JSON object in \.manifest",
    ),
    # Two JWS: OPA takes exactly one.
    ("two signatures", _two_signatures, r"expected exactly one JWS"),
    # Algorithm confusion.
    (
        "hs256 signature",
        _signed_with_hs256,
        r"expected a bundle signed with ES256, got alg 'HS256'",
    ),
    # A scoped signature, which OPA without a scope refuses.
    ("scoped signature", _scoped, r"expected no scope in the payload"),
]


@pytest.mark.parametrize(
    ("tamper", "message"),
    [pytest.param(t, m, id=name) for name, t, m in TAMPER_CASES],
)
def test_tampered_bundle_is_refused(
    signed_files: dict[str, bytes],
    signer: SigningKey,
    signer_keys: KeyStore,
    tamper: Callable[[dict[str, bytes], SigningKey], dict[str, bytes]],
    message: str,
) -> None:
    archive = pack_archive(tamper(signed_files, signer))
    with pytest.raises(PolicyBundleError, match=message):
        verify_bundle_archive(archive, trusted=signer_keys.public_keyset(POLICY_SIGNER))


def test_changed_signature_bytes_are_refused(
    signed_files: dict[str, bytes], signer_keys: KeyStore
) -> None:
    (token,) = json.loads(signed_files[SIGNATURES])["signatures"]
    head, payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    files = {
        **signed_files,
        SIGNATURES: json.dumps({"signatures": [f"{head}.{payload}.{flipped}"]}).encode(),
    }
    with pytest.raises(PolicyBundleError, match="signature to verify"):
        verify_bundle_files(files, trusted=signer_keys.public_keyset(POLICY_SIGNER))


def test_revoked_signer_key_is_refused(real_bundle: PolicyBundle, tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    store.ensure_policy_signer()
    old = store.signing_key(POLICY_SIGNER)
    archive = build_signed_archive(real_bundle, old)
    store.rotate(POLICY_SIGNER)
    # A rotation keeps the old key trusted: bundles it signed still load.
    verify_bundle_archive(archive, trusted=store.public_keyset(POLICY_SIGNER))
    store.store_revocation(POLICY_SIGNER, old.kid, reason="leaked", now=datetime.now(UTC))
    with pytest.raises(PolicyBundleError, match="trusted policy-signer key"):
        verify_bundle_archive(archive, trusted=store.public_keyset(POLICY_SIGNER))


def _raw_archive(name: str, kind: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
        archive.addfile(info, io.BytesIO(b""))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # A path climbing out of the bundle.
        (_raw_archive("../escape.rego", tarfile.REGTYPE), "relative path inside the bundle"),
        # A symbolic link, which could point anywhere on the host.
        (_raw_archive("data.json", tarfile.SYMTYPE), "regular files only"),
        # Not an archive at all.
        (b"not gzip", "expected a .tar.gz policy bundle"),
    ],
)
def test_unsafe_archives_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(PolicyBundleError, match=message):
        unpack_archive(raw)


# ---- the broker's wiring --------------------------------------------------------------


def _settings(keys: KeyStore, bundle_path: Path, **extra: object) -> Settings:
    return Settings(
        keys_dir=keys.root,
        policy_bundle_path=bundle_path,
        policy_engine="embedded",
        **extra,  # type: ignore[arg-type]  # test-only overrides of typed fields
    )


def test_production_profile_refuses_to_start_without_a_bundle(
    signer_keys: KeyStore, tmp_path: Path
) -> None:
    settings = _settings(signer_keys, tmp_path / "absent.tar.gz", policy_bundle_sign_at_start=False)
    with pytest.raises(PolicyBundleError, match="expected a signed policy bundle at"):
        build_policy_engine(settings, load_convenant(settings.convenant_path))


def test_broker_serves_the_bundle_file_with_its_revision(
    signer_keys: KeyStore, signer: SigningKey, real_bundle: PolicyBundle, tmp_path: Path
) -> None:
    path = tmp_path / "policy-bundle.tar.gz"
    path.write_bytes(build_signed_archive(real_bundle, signer))
    settings = _settings(signer_keys, path, policy_bundle_sign_at_start=False)
    engine = build_policy_engine(settings, load_convenant(settings.convenant_path))
    assert engine.version == real_bundle.version
    # A tampered file is refused at the next start: fail closed, no fallback.
    files = unpack_archive(path.read_bytes())
    path.write_bytes(pack_archive(_tampered_rego(files, signer)))
    with pytest.raises(PolicyBundleError, match="digest mismatch"):
        build_policy_engine(settings, load_convenant(settings.convenant_path))


def test_embedded_profile_signs_at_start_and_serves_the_revision(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys")
    settings = _settings(keys, tmp_path / "unused.tar.gz")
    convenant = load_convenant(settings.convenant_path)
    engine = build_policy_engine(settings, convenant)
    assert engine.version == serving_bundle(REAL_POLICIES, convenant).version
    assert keys.has(POLICY_SIGNER)
    assert not (tmp_path / "unused.tar.gz").exists()


def test_bundle_command_writes_a_bundle_the_broker_loads(
    signer_keys: KeyStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from broker.cli import main  # noqa: PLC0415  # the CLI entry point under test

    out = tmp_path / "out" / "policy-bundle.tar.gz"
    assert main(["policy", "bundle", "--out", str(out), "--dir", str(signer_keys.root)]) == 0
    engine = EmbeddedPolicyEngine.from_signed_archive(
        out, trusted=signer_keys.public_keyset(POLICY_SIGNER)
    )
    printed = capsys.readouterr().out
    assert f"revision {engine.version}" in printed
    assert "--verification-key-id policy-signer --signing-alg ES256" in printed
    assert engine.evaluate(EXCHANGE, {})["allow"] is False


# ---- the OPA stand-in verifies as OPA does ---------------------------------------------


def test_standin_serves_a_verified_bundle_with_its_revision(
    real_bundle: PolicyBundle, tmp_path: Path
) -> None:
    with OpaStandIn() as standin:
        standin.serve_bundle(real_bundle, tmp_path)
        with OpaPolicyEngine(
            url=standin.url, version=real_bundle.version, timeout_seconds=5
        ) as opa:
            assert opa.evaluate(EXCHANGE, {})["allow"] is False


def test_standin_refuses_a_bundle_whose_signature_fails(
    real_bundle: PolicyBundle, signer: SigningKey, tmp_path: Path
) -> None:
    with OpaStandIn() as standin:
        archive = standin.serve_bundle(real_bundle, tmp_path / "good")
        # Another key's PEM: as OPA started with the wrong --verification-key.
        stranger = tmp_path / "stranger.pem"
        standin.serve_bundle(real_bundle, tmp_path / "other")
        stranger.write_bytes((tmp_path / "other" / "policy-signer.pem").read_bytes())
        with pytest.raises(PolicyBundleError, match="trusted policy-signer key"):
            standin.load_bundle_archive(archive, verification_key=stranger)
        # A tampered archive, right key.
        tampered = tmp_path / "tampered.tar.gz"
        files = unpack_archive(archive.read_bytes())
        tampered.write_bytes(pack_archive(_tampered_data(files, signer)))
        with pytest.raises(PolicyBundleError, match="digest mismatch"):
            standin.load_bundle_archive(
                tampered, verification_key=tmp_path / "good" / "policy-signer.pem"
            )
        # OPA keeps its last good bundle; so does the stand-in.
        with OpaPolicyEngine(
            url=standin.url, version=real_bundle.version, timeout_seconds=5
        ) as opa:
            assert opa.evaluate(EXCHANGE, {})["allow"] is False


def test_bundle_error_fails_closed_as_policy_unavailable() -> None:
    # The broker's start and every decision path treat it as "no policy".
    assert issubclass(PolicyBundleError, PolicyUnavailableError)
