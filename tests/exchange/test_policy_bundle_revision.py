"""The signed bundle's revision is the `policy_version` every audit entry records."""

from __future__ import annotations

import json
from pathlib import Path

from broker.convenant import Convenant
from broker.keys import POLICY_SIGNER, KeyStore
from broker.policy.bundle import MANIFEST, build_signed_archive, unpack_archive
from broker.policy.embedded import EmbeddedPolicyEngine
from broker.policy.inputs import serving_bundle
from broker.settings import PROJECT_ROOT
from tests.exchange.conftest import Rig


def test_audit_entries_name_the_signed_bundle_revision(
    rig: Rig, keystore: KeyStore, convenant: Convenant, tmp_path: Path
) -> None:
    keystore.ensure_policy_signer()
    archive = tmp_path / "policy-bundle.tar.gz"
    archive.write_bytes(
        build_signed_archive(
            serving_bundle(PROJECT_ROOT / "policies", convenant),
            keystore.signing_key(POLICY_SIGNER),
        )
    )
    revision = json.loads(unpack_archive(archive.read_bytes())[MANIFEST])["revision"]
    rig.use_policy(
        EmbeddedPolicyEngine.from_signed_archive(
            archive, trusted=keystore.public_keyset(POLICY_SIGNER)
        )
    )
    rig.run()
    entries = rig.exchange_entries()
    assert len(entries) == 2
    assert entries[0]["decision"] == "intent"
    assert {e["policy_version"] for e in entries} == {revision}
