"""The OPA-server policy engine: decisions from an Open Policy Agent over its REST API.

What it does: `OpaPolicyEngine.evaluate("ketenbroker/exchange/decision", input)`
is OPA's Data API call ``POST /v1/data/ketenbroker/exchange/decision`` with the
body ``{"input": ...}``, and returns the ``result`` member of the answer. Every
way that call can go wrong is a `PolicyUnavailableError` (style.md §13): no
answer within the timeout, a refused connection, any status but 200, a body
that is not a JSON object or is larger than `MAX_DECISION_BYTES`, and above
all an answer without ``result``, which is how OPA says the rule is undefined
for this input (OPA REST API reference, "Get a Document (with Input)":
https://www.openpolicyagent.org/docs/rest-api). `ping()` asks OPA's Health
API, and `upload_bundle` / `upload_data` put a `PolicyBundle` (or run-time
data such as the convenant) into an OPA through the Policy and Data APIs.

What it does not: compile or check Rego itself, or prove that the policy OPA
holds is the one named by `version`. The caller passes the version of the
bundle it deployed (docker/ mounts policies/ into the OPA container), and
that is the version the audit log records. Nor does it retry: a decision that
did not come within the timeout is a refusal to disclose, not a reason to ask
again while the requester waits.

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
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import requests
from opa_client import OpaClient
from opa_client.errors import DeletePolicyError, RegoParseError, TypeException

from broker.errors import PolicyUnavailableError
from broker.policy.engine import ENTRYPOINTS, PolicyBundle

# A decision is a small document: a verdict, refusal codes with one-line
# reasons, a list of field names. The largest one the Lekstroom convenant can
# produce is a few kilobytes; 1 MiB leaves two orders of magnitude of headroom
# and still keeps a broken or hostile endpoint from filling the broker's memory.
MAX_DECISION_BYTES = 1024 * 1024

# Entrypoint segments become URL path segments; Rego identifiers only, so an
# entrypoint from configuration can never address another path or query.
_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

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
    if not all(_SEGMENT.match(segment) for segment in segments):
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
    ) -> None:
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
            raise PolicyUnavailableError(f"expected one of {self._entrypoints}, got {entrypoint!r}")
        try:
            body = json.dumps({"input": input_document}, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as e:
            raise PolicyUnavailableError(f"input for {entrypoint!r} is not JSON: {e}") from e
        path = f"/v1/data/{entrypoint}"
        raw = self._post(path, body.encode("utf-8"))
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
        if "result" not in answer:
            # OPA's way of saying "undefined": no decision, so no disclosure.
            raise PolicyUnavailableError(
                f"{entrypoint!r} is undefined for this input (OPA answered without 'result')"
            )
        return answer["result"]

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
        """Raise PolicyUnavailableError unless OPA's Health API answers 200."""
        if not self._admin.check_health():
            # check_health swallows the cause; there is no foreign exception to chain.
            raise PolicyUnavailableError(
                f"expected 200 from GET {self._base_url}/health, got no healthy answer"
            )

    def upload_bundle(self, bundle: PolicyBundle) -> None:
        """Make OPA hold exactly `bundle`: its modules (others deleted) and its data.

        For tests and development set-ups that start an empty OPA. In the
        docker/ deployment OPA reads policies/ itself and only the run-time
        data comes from the broker (`upload_data`).
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

        Keys that are not in `documents` are left alone, so the run-time data
        (``{"convenant": ...}``) can be added to data OPA loaded from files.
        """
        for key, document in documents.items():
            if not _SEGMENT.match(key):
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
