"""`ketenbroker policy eval|test|bundle`: the Rego policy from the command line.

    ketenbroker policy eval ENTRYPOINT --input FILE
    ketenbroker policy test [-v]
    ketenbroker policy bundle [--out PATH]

What it does: `eval` asks the embedded engine, over the same verified bundle
the broker would serve (`broker.policy.served`), for one entrypoint's value.
`test` runs the Rego unit tests (`*_test.rego`) with the convenant as data.
`bundle` writes the signed OPA bundle (`broker.policy.bundle`): policies/
plus the convenant, signed with the policy-signer key of the key folder,
to `--out` (default the settings' `policy_bundle_path`,
var/policy-bundle.tar.gz), then reads the file back through the verifier
and prints its revision, the key id and algorithm OPA must be started with.

What it does not: upload anything. OPA reads the file (`opa run --bundle
FILE --verification-key public/policy-signer.pem --verification-key-id
policy-signer --signing-alg ES256`); the broker reads it in the production
profile.

Exit status: 0 done (`test`: every test passed), 1 refused or failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from broker.convenant import load_convenant
from broker.errors import KetenbrokerError
from broker.keys import POLICY_SIGNER, KeyStore
from broker.policy.bundle import SIGNING_ALGORITHM, build_signed_archive, load_signed_bundle
from broker.policy.embedded import EmbeddedPolicyEngine
from broker.policy.inputs import convenant_data, serving_bundle
from broker.policy.rego_tests import run_rego_tests
from broker.policy.served import load_served_bundle
from broker.settings import Settings

EXIT_OK = 0
EXIT_FAILED = 1


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    convenant = load_convenant(settings.convenant_path)
    bundle = load_served_bundle(settings, convenant)
    engine = EmbeddedPolicyEngine(bundle, entrypoints=(args.entrypoint,))
    document = json.loads(Path(args.input).read_text())
    print(json.dumps(engine.evaluate(args.entrypoint, document), indent=2, ensure_ascii=False))
    return EXIT_OK


def _test(args: argparse.Namespace, settings: Settings) -> int:
    convenant = load_convenant(settings.convenant_path)
    results = run_rego_tests(settings.policies_dir, extra_data=convenant_data(convenant))
    failed = [r for r in results if not r.passed]
    for result in results:
        if args.verbose or not result.passed:
            mark = "PASS" if result.passed else "FAIL"
            print(f"{mark} {result.name} {result.detail}".rstrip())
    print(f"rego: {len(results) - len(failed)} passed, {len(failed)} failed")
    return EXIT_FAILED if failed or not results else EXIT_OK


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` in one rename: OPA or a broker starting meanwhile reads old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # public: OPA's container reads it as another user
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _bundle(args: argparse.Namespace, settings: Settings) -> int:
    out = Path(args.out) if args.out else settings.policy_bundle_path
    keys = KeyStore(Path(args.dir) if args.dir else settings.keys_dir)
    try:
        bundle = serving_bundle(settings.policies_dir, load_convenant(settings.convenant_path))
        archive = build_signed_archive(bundle, keys.signing_key(POLICY_SIGNER))
        write_atomically(out, archive)
        # Read back through the verifier: what was written is what will be served.
        written = load_signed_bundle(out, trusted=keys.public_keyset(POLICY_SIGNER))
    except KetenbrokerError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote signed policy bundle {out}")
    print(f"revision {written.version}")
    print(
        f"signed with {SIGNING_ALGORITHM}, key id {POLICY_SIGNER};"
        f" OPA: --verification-key {keys.policy_signer_pem_path()}"
        f" --verification-key-id {POLICY_SIGNER} --signing-alg {SIGNING_ALGORITHM}"
    )
    return EXIT_OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `policy` command group and its three subcommands."""
    policy = commands.add_parser("policy", help="the Rego policy").add_subparsers(
        dest="policy_command", required=True
    )
    evaluate = policy.add_parser("eval", help="evaluate an entrypoint with the embedded engine")
    evaluate.add_argument("entrypoint", help="e.g. ketenbroker/exchange/decision")
    evaluate.add_argument("--input", required=True, help="JSON input document")
    evaluate.set_defaults(handler=_eval)
    test = policy.add_parser("test", help="run the Rego unit tests")
    test.add_argument("-v", "--verbose", action="store_true")
    test.set_defaults(handler=_test)
    bundle = policy.add_parser("bundle", help="write the signed OPA policy bundle")
    bundle.add_argument("--out", help="archive path (default: the settings' policy_bundle_path)")
    bundle.add_argument("--dir", help="key folder (default: the settings' keys_dir)")
    bundle.set_defaults(handler=_bundle)
