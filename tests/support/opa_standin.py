"""An OPA stand-in for tests: OPA's REST API on loopback, evaluated by rego-cpp.

Why a stand-in: no OPA binary can be installed on these machines (the
development machines and CI have no Docker engine and no way to fetch OPA's
release binary), so the tests of `broker.policy.opa.OpaPolicyEngine` cannot
start a real OPA. This server follows the parts of OPA's documented REST API
that the engine uses (OPA REST API reference,
https://www.openpolicyagent.org/docs/rest-api): the Health API, the Policy API
and the Data API, with OPA's status codes and its answer shapes, notably
``{}`` without ``result`` when a document is undefined. It evaluates the real
Rego it is given with rego-cpp (regopy), the same evaluator as the embedded
engine. It reads a signed bundle archive as ``opa run --bundle FILE
--verification-key KEY`` does, refusing one whose signature or file digests
do not verify, and reports the manifest's revision as provenance
(``?provenance=true``), which is what the engine checks on every decision.
The real OPA runs in docker/ (the `openpolicyagent/opa` image).

What it is not: OPA. It parses modules with rego-cpp, which accepts some
modules OPA rejects (rego-cpp does not check variable safety, for one); it
keeps no metrics, explanations or decision logs; it refuses every API write
while a bundle is loaded, where OPA refuses only those under the bundle's
roots; the ``ast`` in the Policy API answers carries only the package path. Those gaps do not touch
what the engine relies on: a decision's ``result`` and its absence.

Fault modes, for the fail-closed tests: `delay_seconds` holds every answer
back (longer than the client's timeout makes a slow OPA), `malformed` answers
200 with a body that is not JSON, `raw_body` answers 200 with the given bytes,
`fail_status` answers that status with OPA's error document, and
`redirect_to` answers 307 to the same path on another server. They apply
to every request, health checks included.

Lifecycle: `start()` binds 127.0.0.1 on a port the OS chooses and serves
from a thread; `stop()` shuts the server down, wakes any delayed answer and
joins every thread, so nothing keeps running after a test.
"""

from __future__ import annotations

import copy
import json
import re
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

import regopy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from broker.keys import (
    POLICY_SIGNER_ALGORITHM,
    PublicKeySet,
    SigningKey,
    TrustedKey,
    generate_signing_key,
    jwk_thumbprint,
    public_jwk_of,
)
from broker.policy.bundle import PolicyBundleError, build_signed_archive, load_signed_bundle
from broker.policy.engine import PolicyBundle

# Inputs and modules in these tests are a few kilobytes; 4 MiB is far above
# them and still bounds what a runaway test can make this thread buffer.
MAX_REQUEST_BYTES = 4 * 1024 * 1024

_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)

# Not JSON: the start of a decision, cut off mid-token.
MALFORMED_BODY = b'{"result": {"allow": tru'


class _NotFoundError(Exception):
    pass


class _BadRequestError(Exception):
    pass


class OpaStandIn:
    """OPA's REST API on 127.0.0.1, backed by regopy; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._policies: dict[str, str] = {}
        self._data: dict[str, Any] = {}
        # name -> manifest revision of the bundle loaded by load_bundle_directory.
        self._bundles: dict[str, str] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # Fault modes (module docstring).
        self.delay_seconds = 0.0
        self.malformed = False
        self.raw_body: bytes | None = None
        self.fail_status: int | None = None
        self.redirect_to: str | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("expected a stopped stand-in, got a running one")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            sock.listen(16)
        except OSError:
            sock.close()
            raise
        self._stopping.clear()
        self._server = _Server(sock, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="opa-standin",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()  # wakes answers held back by delay_seconds
        server.shutdown()
        server.server_close()  # joins the request threads (block_on_close)
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the stand-in is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextmanager
    def faults(
        self,
        *,
        delay_seconds: float = 0.0,
        malformed: bool = False,
        raw_body: bytes | None = None,
        fail_status: int | None = None,
        redirect_to: str | None = None,
    ) -> Iterator[None]:
        """Answer with these faults inside the block, normally again after it."""
        self.delay_seconds, self.malformed = delay_seconds, malformed
        self.raw_body, self.fail_status, self.redirect_to = raw_body, fail_status, redirect_to
        try:
            yield
        finally:
            self.delay_seconds, self.malformed = 0.0, False
            self.raw_body, self.fail_status, self.redirect_to = None, None, None

    def load(self, bundle: PolicyBundle) -> None:
        """Hold `bundle` as if it had been uploaded through the API: no bundle revision."""
        with self._lock:
            self._policies = dict(bundle.modules)
            self._data = copy.deepcopy(bundle.data)
            self._bundles = {}

    def load_bundle_archive(self, path: Path, *, verification_key: Path) -> None:
        """Read a signed bundle archive as ``opa run --bundle path --verification-key key`` does.

        OPA's bundle format (https://www.openpolicyagent.org/docs/management-bundles)
        and its signature check: the archive's ``.signatures.json`` must hold
        one ES256 JWS that verifies with the PEM public key `verification_key`,
        listing every other file with its digest. The stand-in verifies with
        the broker's own verifier (`broker.policy.bundle`), given only that one
        key, as OPA is; a bundle that fails raises `PolicyBundleError` and
        whatever was loaded before stays, as OPA keeps its last good bundle.
        The manifest's revision is then reported as provenance.
        """
        public_key = serialization.load_pem_public_key(verification_key.read_bytes())
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise PolicyBundleError(f"expected an EC public key in {verification_key}")
        trusted = PublicKeySet(
            [
                TrustedKey(
                    kid=jwk_thumbprint(public_jwk_of(public_key)),
                    alg=POLICY_SIGNER_ALGORITHM,
                    public_key=public_key,
                )
            ]
        )
        bundle = load_signed_bundle(path, trusted=trusted)
        with self._lock:
            self._policies = {f"{path.name}/{name}": src for name, src in bundle.modules.items()}
            self._data = copy.deepcopy(bundle.data)
            self._bundles = {str(path): bundle.version}

    def serve_bundle(
        self, bundle: PolicyBundle, directory: Path, *, signing_key: SigningKey | None = None
    ) -> Path:
        """What docker/ does: sign `bundle` into an archive in `directory`, load it as OPA would.

        `signing_key` defaults to a fresh ES256 key made for this bundle; its
        public PEM is written beside the archive as OPA's verification key.
        After this an `OpaPolicyEngine(version=bundle.version)` gets decisions
        with the revision it checks. Returns the archive's path.
        """
        key = signing_key or generate_signing_key(POLICY_SIGNER_ALGORITHM)
        directory.mkdir(parents=True, exist_ok=True)
        archive = directory / "policy-bundle.tar.gz"
        archive.write_bytes(build_signed_archive(bundle, key))
        pem = directory / "policy-signer.pem"
        pem.write_bytes(
            key.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.load_bundle_archive(archive, verification_key=pem)
        return archive

    def provenance(self) -> dict[str, Any]:
        """OPA's provenance member; ``bundles`` only when a bundle is loaded, as in OPA."""
        with self._lock:
            bundles = {name: {"revision": rev} for name, rev in self._bundles.items()}
        return {"version": "opa-standin", **({"bundles": bundles} if bundles else {})}

    def _refuse_writes_under_a_bundle(self) -> None:
        # OPA refuses API writes under a loaded bundle's roots; the stand-in,
        # which keeps no roots, refuses every write while a bundle is loaded.
        if self._bundles:
            raise _BadRequestError("path is owned by a bundle")

    # -- the REST API, called from the request threads ----------------------

    def wait_for_fault_delay(self) -> bool:
        """Hold the answer back for delay_seconds; False if the stand-in stopped meanwhile."""
        if self.delay_seconds > 0:
            return not self._stopping.wait(self.delay_seconds)
        return True

    def put_policy(self, policy_id: str, source: str) -> None:
        checker = regopy.Interpreter()
        try:
            checker.add_module(policy_id, source)
        except regopy.RegoError as e:
            raise _BadRequestError(str(e)) from e
        with self._lock:
            self._refuse_writes_under_a_bundle()
            self._policies[policy_id] = source

    def delete_policy(self, policy_id: str) -> None:
        with self._lock:
            self._refuse_writes_under_a_bundle()
            if self._policies.pop(policy_id, None) is None:
                raise _NotFoundError(f'storage_not_found_error: policy id "{policy_id}"')

    def list_policies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_policy_document(pid, src) for pid, src in sorted(self._policies.items())]

    def get_policy(self, policy_id: str) -> dict[str, Any]:
        with self._lock:
            source = self._policies.get(policy_id)
        if source is None:
            raise _NotFoundError(f'storage_not_found_error: policy id "{policy_id}"')
        return _policy_document(policy_id, source)

    def put_data(self, path: list[str], document: Any) -> None:
        with self._lock:
            self._refuse_writes_under_a_bundle()
            if not path:
                if not isinstance(document, dict):
                    raise _BadRequestError("root document must be an object")
                self._data = copy.deepcopy(document)
                return
            node = self._data
            for segment in path[:-1]:
                child = node.get(segment)
                if not isinstance(child, dict):
                    child = node[segment] = {}
                node = child
            node[path[-1]] = copy.deepcopy(document)

    def evaluate(self, path: list[str], input_document: Any, *, has_input: bool) -> Any:
        """OPA's Data API answer for `data.<path>`: ``{"result": v}`` or ``{}``."""
        with self._lock:
            interpreter = regopy.Interpreter()
            try:
                for policy_id, source in self._policies.items():
                    interpreter.add_module(policy_id, source)
                interpreter.add_data(self._data)
                if has_input:
                    interpreter.set_input(regopy.Input(input_document))
            except regopy.RegoError as e:
                raise RuntimeError(f"loading policies failed: {e}") from e
            # Segments as JSON string keys: a path segment is never read as Rego.
            query = "data" + "".join(f"[{json.dumps(segment)}]" for segment in path)
            try:
                output = interpreter.query(query)
            except regopy.RegoError as e:
                raise RuntimeError(f"evaluation failed: {e}") from e
            if not output.ok():
                raise RuntimeError(f"evaluation failed: {output}")
            if len(output) == 0 or not output[0].expressions:
                return {}
            return {"result": output[0].expressions[0]}


def _policy_document(policy_id: str, source: str) -> dict[str, Any]:
    match = _PACKAGE.search(source)
    names = match.group(1).split(".") if match else []
    package_path = [{"type": "var", "value": "data"}] + [
        {"type": "string", "value": name} for name in names
    ]
    return {"id": policy_id, "raw": source, "ast": {"package": {"path": package_path}}}


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, sock: socket.socket, standin: OpaStandIn) -> None:
        super().__init__(sock.getsockname(), _Handler, bind_and_activate=False)
        self.socket.close()  # the one made by the constructor; we bring our own
        self.socket = sock
        self.standin = standin

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (its timeout, in the slow mode) is expected; others are not."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    _provenance = False
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read answers, not access logs."""

    # -- plumbing ----------------------------------------------------------

    def _answer(self, status: int, document: Any = None, *, raw: bytes | None = None) -> None:
        body = raw if raw is not None else b""
        if document is not None:
            body = json.dumps(document).encode()
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _error(self, status: HTTPStatus, code: str, message: str) -> None:
        self._answer(status, {"code": code, "message": message})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            raise _BadRequestError(f"request body of {length} bytes exceeds {MAX_REQUEST_BYTES}")
        return self.rfile.read(length)

    def _json_body(self) -> Any:
        raw = self._body()
        try:
            return json.loads(raw) if raw else None
        except ValueError as e:
            raise _BadRequestError(f"body is not JSON: {e}") from e

    def _dispatch(self, method: str) -> None:
        standin = self.server.standin
        if not standin.wait_for_fault_delay():
            return  # stopping: close the connection unanswered, as a dying OPA would
        if standin.malformed or standin.raw_body is not None:
            self._answer(HTTPStatus.OK, raw=standin.raw_body or MALFORMED_BODY)
            return
        if standin.redirect_to is not None:
            self.send_response(HTTPStatus.TEMPORARY_REDIRECT)
            self.send_header("Location", standin.redirect_to + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if standin.fail_status is not None:
            self._error(HTTPStatus(standin.fail_status), "internal_error", "injected fault")
            return
        url = urlsplit(self.path)
        self._provenance = parse_qs(url.query).get("provenance") == ["true"]
        try:
            self._route(method, url.path)
        except _BadRequestError as e:
            self._error(HTTPStatus.BAD_REQUEST, "invalid_parameter", str(e))
        except _NotFoundError as e:
            self._error(HTTPStatus.NOT_FOUND, "resource_not_found", str(e))
        except RuntimeError as e:
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", str(e))

    def _route(self, method: str, route: str) -> None:  # noqa: PLR0912  # one branch per endpoint
        standin = self.server.standin
        if route == "/health" and method == "GET":
            self._answer(HTTPStatus.OK, {})
            return
        if route in ("/v1/policies", "/v1/policies/") and method == "GET":
            self._answer(HTTPStatus.OK, {"result": standin.list_policies()})
            return
        if route.startswith("/v1/policies/"):
            policy_id = unquote(route.removeprefix("/v1/policies/"))
            if not policy_id:
                raise _BadRequestError("missing policy id")
            if method == "PUT":
                standin.put_policy(policy_id, self._body().decode("utf-8"))
                self._answer(HTTPStatus.OK, {})
            elif method == "DELETE":
                standin.delete_policy(policy_id)
                self._answer(HTTPStatus.OK, {})
            elif method == "GET":
                self._answer(HTTPStatus.OK, {"result": standin.get_policy(policy_id)})
            else:
                self._error(HTTPStatus.METHOD_NOT_ALLOWED, "invalid_parameter", method)
            return
        if route == "/v1/data" or route.startswith("/v1/data/"):
            path = [unquote(s) for s in route.removeprefix("/v1/data").split("/") if s]
            if method == "PUT":
                standin.put_data(path, self._json_body())
                self._answer(HTTPStatus.NO_CONTENT)
            elif method == "POST":
                body = self._json_body()
                if body is None:
                    body = {}
                if not isinstance(body, dict):
                    raise _BadRequestError("body must be an object")
                has_input = "input" in body
                value = standin.evaluate(path, body.get("input"), has_input=has_input)
                self._answer(HTTPStatus.OK, self._with_provenance(value))
            elif method == "GET":
                value = standin.evaluate(path, None, has_input=False)
                self._answer(HTTPStatus.OK, self._with_provenance(value))
            else:
                self._error(HTTPStatus.METHOD_NOT_ALLOWED, "invalid_parameter", method)
            return
        self._error(HTTPStatus.NOT_FOUND, "resource_not_found", f"no route {route!r}")

    def _with_provenance(self, answer: dict[str, Any]) -> dict[str, Any]:
        if not self._provenance:
            return answer
        return {**answer, "provenance": self.server.standin.provenance()}

    # http.server dispatches on these names.
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")
