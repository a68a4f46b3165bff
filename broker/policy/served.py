"""The verified policy bundle a starting broker serves, chosen by its settings.

What it does: `load_served_bundle` returns the `PolicyBundle` both engines
use, and only ever one that came out of `broker.policy.bundle`'s verifier
with the policy-signer's pinned public keys (`keys_dir/public/`). Two ways
lead there (docs/decisions.md, "Signed policy bundles"):

* from the file `policy_bundle_path`, made by `ketenbroker policy bundle`
  where the policy-signer's private key is kept. The production default: the
  broker then needs no private key to serve a policy, only the public one.
* signed at start (`policy_bundle_sign_at_start`, the embedded default): the
  broker builds the bundle from `policies_dir` and the convenant, signs it in
  memory with the policy-signer key of `keys_dir` (made on first use, like
  the case KEK), and verifies those very bytes. Development edits to
  policies/ then apply at the next start instead of a stale file deciding.

What it does not: fall back. A missing or failing bundle file is an error
and the broker does not start; nothing is rebuilt behind the operator's back.
"""

from __future__ import annotations

from broker.convenant import Convenant
from broker.keys import POLICY_SIGNER, KeyStore
from broker.policy.bundle import build_signed_archive, load_signed_bundle, verify_bundle_archive
from broker.policy.engine import PolicyBundle
from broker.policy.inputs import serving_bundle
from broker.settings import Settings


def signs_at_start(settings: Settings) -> bool:
    if settings.policy_bundle_sign_at_start is not None:
        return settings.policy_bundle_sign_at_start
    return settings.profile == "embedded"


def load_served_bundle(settings: Settings, convenant: Convenant) -> PolicyBundle:
    """The bundle to serve, its signature verified; raise PolicyBundleError otherwise."""
    keys = KeyStore(settings.keys_dir)
    if signs_at_start(settings):
        keys.ensure_policy_signer()
        archive = build_signed_archive(
            serving_bundle(settings.policies_dir, convenant), keys.signing_key(POLICY_SIGNER)
        )
        return verify_bundle_archive(archive, trusted=keys.public_keyset(POLICY_SIGNER))
    return load_signed_bundle(
        settings.policy_bundle_path, trusted=keys.public_keyset(POLICY_SIGNER)
    )
