"""The OPA-server policy engine: decisions from an Open Policy Agent over its REST API.

What it does: `OpaPolicyEngine.evaluate("ketenbroker/exchange/decision", input)`
is OPA's Data API call ``POST /v1/data/ketenbroker/exchange/decision`` with the
body ``{"input": ...}``, and returns the ``result`` member of the answer. Every
way that call can go wrong is a `PolicyUnavailableError` (style.md §13): no
answer within the timeout, a refused connection, any status but 200, a body
that is not a JSON object or is larger than `MAX_DECISION_BYTES`, and above
all an answer without ``result``, which is how OPA says the rule is undefined
for this input (OPA REST API reference, "Get a Document (with Input)",
https://www.openpolicyagent.org/docs/rest-api). `ping()` asks OPA's Health API.

Which policy decided: `version` is what the audit log records, so by default
every decision is asked with ``?provenance=true`` and refused unless OPA says
it decided with a bundle whose manifest ``revision`` is exactly `version`.
The broker passes the revision of the signed bundle it verified itself
(`broker.policy.served`); OPA loads the same signed archive, written by
`ketenbroker policy bundle`, with ``--verification-key`` so it too refuses a
bundle whose signature fails. `write_opa_bundle` (and
``python -m broker.policy.opa DIR``) still writes the unsigned directory
form, for an OPA started without verification in throw-away set-ups.
An OPA that holds loose
modules, another revision, or nothing at all therefore decides nothing.
`upload_bundle` / `upload_data` push a bundle through the Policy and Data APIs
instead, for tests and throw-away set-ups; OPA reports no bundle revision for
those, so they need ``verify_bundle_revision=False``.

What it does not: compile or check Rego, or retry. A decision that did not
come within the timeout is a refusal to disclose, not a reason to ask again
while the requester waits.

Why two HTTP clients: opa-python-client (`opa_client.OpaClient`) is used for
what it does well, the health check and the policy and data management calls,
with its retries switched off and its timeout set to ours. The decision call,
which carries personal data, goes through one `httpx.Client` instead, because
`OpaClient.query_rule` cannot give the guarantees this call needs: it accepts
any 2xx status, follows redirects, reads the whole body whatever its size,
and its `requests` session honours proxy settings from the environment, which
could route case data through a proxy nobody meant to trust. The httpx client
here has `trust_env=False` and does not follow redirects; each phase of the
call (connect, write, read, pool) is bounded by `timeout_seconds`.

Policy uploads always pass ``rego_compat=False``: opa-python-client otherwise
rewrites a module that OPA rejects into "v1 syntax" and uploads the rewrite,
and a policy that is not byte for byte the reviewed one must never decide.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import requests
from opa_client import OpaClient
from opa_client.errors import DeletePolicyError, RegoParseError, TypeException

from broker.errors import PolicyUnavailableError
from broker.metrics import Metrics
from broker.policy.engine import ENTRYPOINTS, PolicyBundle, check_policy_input

# A decision is a small document: a verdict, refusal codes with one-line
# reasons, a list of field names. The largest one the Lekstroom convenant can
# produce is a few kilobytes; 1 MiB leaves two orders of magnitude of headroom
# and still keeps a broken or hostile endpoint from filling the broker's memory.
MAX_DECISION_BYTES = 1024 * 1024

# Entrypoint segments become URL path segments; Rego identifiers only, so an
# entrypoint from configuration can never address another path or query.
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_DEFAULT_PORTS = {"http": 80, "https": 443}

# What opa-python-client raises from the management calls: transport errors and
# non-JSON bodies (requests), OPA's error documents (its own exception classes).
_ADMIN_ERRORS = (
    requests.RequestException,
    ValueError,
    RegoParseError,
    DeletePolicyError,
    TypeException,
)


def _split_opa_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an OPA base URL such as ``http://opa:8181``."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise PolicyUnavailableError(f"expected an http or https OPA URL, got {url!r}")
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError as e:
        raise PolicyUnavailableError(f"expected a numeric port in the OPA URL, got {url!r}") from e
    if not parts.hostname or parts.username or parts.password:
        raise PolicyUnavailableError(f"expected host[:port] without credentials, got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        # OPA serves its API at the root; opa-python-client cannot add a prefix.
        raise PolicyUnavailableError(f"expected an OPA URL without a path, got {url!r}")
    return parts.scheme, parts.hostname, port


def _check_entrypoint(entrypoint: str) -> None:
    segments = entrypoint.split("/")
    if not all(_SEGMENT.fullmatch(segment) for segment in segments):
        raise PolicyUnavailableError(
            f"expected an entrypoint of Rego identifiers joined by '/', got {entrypoint!r}"
        )


class OpaPolicyEngine:
    """A `PolicyEngine` that asks an OPA server; close it when done."""

    def __init__(
        self,
        *,
        url: str,
        version: str,
        timeout_seconds: float,
        entrypoints: tuple[str, ...] = ENTRYPOINTS,
        max_response_bytes: int = MAX_DECISION_BYTES,
        verify_bundle_revision: bool = True,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        if not timeout_seconds > 0:
            raise PolicyUnavailableError(f"expected a positive timeout, got {timeout_seconds!r}")
        if not entrypoints:
            raise PolicyUnavailableError("expected at least one entrypoint, got none")
        for entrypoint in entrypoints:
            _check_entrypoint(entrypoint)
        scheme, host, port = _split_opa_url(url)
        # IPv6 literals lose their brackets in urlsplit; both clients need them back.
        netloc_host = f"[{host}]" if ":" in host else host
        self._base_url = f"{scheme}://{netloc_host}:{port}"
        self._version = version
        self._entrypoints = entrypoints
        self._max_response_bytes = max_response_bytes
        self._verify_bundle_revision = verify_bundle_revision
        self._http = httpx.Client(
            base_url=self._base_url,
            timeout=httpx.Timeout(timeout_seconds),
            follow_redirects=False,
            trust_env=False,
        )
        self._admin = OpaClient(
            host=netloc_host,
            port=port,
            ssl=scheme == "https",
            retries=0,
            timeout=timeout_seconds,
        )

    @property
    def version(self) -> str:
        return self._version

    @property
    def url(self) -> str:
        return self._base_url

    def evaluate(self, entrypoint: str, input_document: dict[str, Any]) -> Any:
        if entrypoint not in self._entrypoints:
            # Checked before timing: metric labels stay the closed set of entrypoints.
            raise PolicyUnavailableError(f"expected one of {self._entrypoints}, got {entrypoint!r}")
        start = time.perf_counter()
        try:
            return self._evaluate(entrypoint, input_document)
        finally:
            self._metrics.observe_policy_decision(
                entrypoint=entrypoint, seconds=time.perf_counter() - start
            )

    def _evaluate(self, entrypoint: str, input_document: dict[str, Any]) -> Any:
        # The same input discipline as the embedded engine, so both decide alike.
        check_policy_input(input_document)
        try:
            body = json.dumps({"input": input_document}, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as e:
            raise PolicyUnavailableError(f"input for {entrypoint!r} is not JSON: {e}") from e
        answer = self._ask(entrypoint, body.encode("utf-8"))
        if "result" not in answer:
            # OPA's way of saying "undefined": no decision, so no disclosure.
            raise PolicyUnavailableError(
                f"{entrypoint!r} is undefined for this input (OPA answered without 'result')"
            )
        return answer["result"]

    def _ask(self, entrypoint: str, body: bytes) -> dict[str, Any]:
        """OPA's answer object for `entrypoint`, its bundle revision checked when required."""
        path = f"/v1/data/{entrypoint}"
        if self._verify_bundle_revision:
            path += "?provenance=true"
        raw = self._post(path, body)
        try:
            answer = json.loads(raw)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both
            raise PolicyUnavailableError(
                f"expected a JSON object from POST {path}, got {raw[:80]!r}"
            ) from e
        if not isinstance(answer, dict):
            raise PolicyUnavailableError(
                f"expected a JSON object from POST {path}, got {type(answer).__name__}"
            )
        if self._verify_bundle_revision:
            self._verify_revision(answer.get("provenance"))
        return answer

    def _verify_revision(self, provenance: Any) -> None:
        """Raise unless every bundle OPA decided with carries revision `self.version`."""
        bundles = provenance.get("bundles") if isinstance(provenance, dict) else None
        revisions = (
            [b.get("revision") if isinstance(b, dict) else None for b in bundles.values()]
            if isinstance(bundles, dict)
            else []
        )
        # No bundle at all (policies pushed through the Policy API, or OPA
        # started on loose files) is as unknown a policy as a wrong revision.
        if not revisions or any(revision != self._version for revision in revisions):
            raise PolicyUnavailableError(
                f"expected OPA to decide with bundle revision {self._version!r}, "
                f"got revisions {revisions!r}"
            )

    def _post(self, path: str, body: bytes) -> bytes:
        """The body of OPA's 200 answer to POST `path`, at most max_response_bytes long."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        try:
            with self._http.stream("POST", path, content=body, headers=headers) as response:
                if response.status_code != httpx.codes.OK:
                    raise PolicyUnavailableError(
                        f"expected status 200 from POST {path}, got {response.status_code}"
                    )
                chunks: list[bytes] = []
                received = 0
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    if received > self._max_response_bytes:
                        raise PolicyUnavailableError(
                            f"expected at most {self._max_response_bytes} bytes from POST "
                            f"{path}, got more"
                        )
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TimeoutException as e:
            raise PolicyUnavailableError(
                f"expected an answer from OPA at {self._base_url} within the timeout, got none: "
                f"{type(e).__name__}"
            ) from e
        except httpx.HTTPError as e:
            raise PolicyUnavailableError(
                f"expected an answer from OPA at {self._base_url}, got {type(e).__name__}: {e}"
            ) from e

    def ping(self) -> None:
        """Raise PolicyUnavailableError unless OPA is healthy and holds bundle `version`."""
        if not self._admin.check_health():
            # check_health swallows the cause; there is no foreign exception to chain.
            raise PolicyUnavailableError(
                f"expected 200 from GET {self._base_url}/health, got no healthy answer"
            )
        if self._verify_bundle_revision:
            # Any entrypoint will do: only the provenance is read, not the result.
            self._ask(self._entrypoints[0], b'{"input":{}}')

    def upload_bundle(self, bundle: PolicyBundle) -> None:
        """Make OPA hold exactly `bundle`: its modules (others deleted) and its data.

        For tests and throw-away set-ups that start an empty OPA; OPA reports
        no bundle revision for what came in this way (module docstring). The
        docker/ deployment loads a bundle written by `write_opa_bundle` instead.
        """
        if not bundle.modules:
            raise PolicyUnavailableError("expected a bundle with Rego modules, got none")
        try:
            for stale in sorted(set(self._admin.get_policies_list()) - set(bundle.modules)):
                self._admin.delete_policy(stale)
            for module_id, source in bundle.modules.items():
                # rego_compat=False: upload the reviewed source or nothing (module docstring).
                self._admin.update_policy_from_string(source, module_id, rego_compat=False)
        except _ADMIN_ERRORS as e:
            raise PolicyUnavailableError(
                f"expected OPA at {self._base_url} to accept the policy modules, got "
                f"{type(e).__name__}: {e}"
            ) from e
        self.upload_data(bundle.data)

    def upload_data(self, documents: dict[str, Any]) -> None:
        """PUT each top-level document to ``/v1/data/<key>``, replacing what was there.

        Keys that are not in `documents` are left alone. OPA refuses writes
        under the roots of a bundle it loaded; this is for an OPA without one.
        """
        for key, document in documents.items():
            if not _SEGMENT.fullmatch(key):
                raise PolicyUnavailableError(f"expected a Rego identifier as data key, got {key!r}")
            if not isinstance(document, dict):
                raise PolicyUnavailableError(
                    f"expected data document {key!r} to be an object, got {type(document).__name__}"
                )
            try:
                self._admin.update_or_create_data(document, key)
            except _ADMIN_ERRORS as e:
                raise PolicyUnavailableError(
                    f"expected OPA at {self._base_url} to accept data document {key!r}, got "
                    f"{type(e).__name__}: {e}"
                ) from e

    def close(self) -> None:
        self._http.close()
        self._admin.close_connection()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


_PACKAGE = re.compile(r"^[ \t]*package[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)
MANIFEST = ".manifest"


def write_opa_bundle(bundle: PolicyBundle, target: Path) -> None:
    """Write `bundle` into `target` as an OPA bundle directory (``opa run --bundle target``).

    The layout is OPA's bundle format
    (https://www.openpolicyagent.org/docs/management-bundles): every module
    at its relative path; every top-level data document at ``<key>/data.json``,
    because OPA puts a ``data.json`` at the path of its directory; and a
    ``.manifest`` whose ``revision`` is `bundle.version` (what the audit log
    records, and what `OpaPolicyEngine` checks on every decision) and whose
    ``roots`` are the packages' first segments and the data keys.

    `target` must be empty or hold an earlier bundle (it has a ``.manifest``);
    its contents are replaced, so no module of an older policy lingers.
    """
    roots: set[str] = set()
    for relative, source in bundle.modules.items():
        parts = PurePosixPath(relative).parts
        if PurePosixPath(relative).is_absolute() or ".." in parts or not relative.endswith(".rego"):
            raise PolicyUnavailableError(f"expected a relative .rego path, got {relative!r}")
        package = _PACKAGE.search(source)
        if package is None:
            raise PolicyUnavailableError(f"expected a package clause in {relative!r}, found none")
        roots.add(package.group(1))
    for key in bundle.data:
        if not _SEGMENT.fullmatch(key):
            raise PolicyUnavailableError(f"expected a Rego identifier as data key, got {key!r}")
        roots.add(key)
    if not bundle.modules:
        raise PolicyUnavailableError("expected a bundle with Rego modules, got none")

    target.mkdir(parents=True, exist_ok=True)
    existing = list(target.iterdir())
    if existing and not (target / MANIFEST).is_file():
        raise PolicyUnavailableError(
            f"expected {target} to be empty or to hold an earlier bundle, got other files"
        )
    for entry in existing:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for relative, source in bundle.modules.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    for key, document in bundle.data.items():
        (target / key).mkdir(exist_ok=True)
        (target / key / "data.json").write_text(
            json.dumps(document, ensure_ascii=False, sort_keys=True), encoding="utf-8"
        )
    manifest = {"revision": bundle.version, "roots": sorted(roots), "rego_version": 1}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """``python -m broker.policy.opa DIR``: write the serving bundle for an OPA server.

    The bundle is the one the broker versions (`broker.services`): policies/
    plus the convenant as run-time data. docker/ runs this in the broker's
    image before OPA starts, so OPA reads the very files the broker hashed.
    """
    from broker.convenant import load_convenant  # noqa: PLC0415  # only this command needs them
    from broker.policy.inputs import serving_bundle  # noqa: PLC0415
    from broker.settings import Settings  # noqa: PLC0415

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m broker.policy.opa BUNDLE_DIR", file=sys.stderr)
        return 2
    settings = Settings()
    convenant = load_convenant(settings.convenant_path)
    bundle = serving_bundle(settings.policies_dir, convenant)
    write_opa_bundle(bundle, Path(args[0]))
    print(f"wrote OPA bundle {bundle.version} to {args[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
