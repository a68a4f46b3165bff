"""The DPO's dashboard in a browser (contract.md "GET /dpo"; issue 4, point 6).

Pages, all server-rendered HTML without script or external resources:

* `GET /dpo/login`: a form to paste an access token (no session needed);
* `POST /dpo/session`: verifies the pasted token and sets the session cookie;
* `POST /dpo/logout`: clears it;
* `GET /dpo`: the overview (log size and verified root, exchanges and
  refusals over time, refusals by reason, disclosures by partner and legal
  basis, special-category blocks, overdue deadlines, destructions due);
* `GET /dpo/search?q=`: a case id or subject pseudonym, its entries and
  subjects, with links to
* `GET /dpo/access-report?case=&subject=`: the AVG art. 15 access report;
* `GET /dpo/static/dpo.css`: the one style sheet.

Authentication (decided by the lead; the details in `broker/dpo/session.py`):
the DPO gets a DPoP-bound access token like every client, with
`private_key_jwt` at `/oauth/token` (client `fg-lekstroom`, scope
`audit:read`), and `ketenbroker dpo login-code` adds a DPoP proof for
`POST /dpo/session` made with the bound key (RFC 9449). The DPO pastes that
login code into the form; the broker verifies token and proof, spends the
proof once, and sets an HttpOnly, SameSite=Strict cookie for Path=/dpo
holding a session value it seals itself (HMAC), never the token, that lives
as long as the token (at most 300 s). Every page opens the seal again; a
missing, expired, forged or partner credential sends the browser to
/dpo/login, and each such refusal is a `security_event` in the audit log
like any other refusal at the edge (docs/decisions.md, Logging). A refusal
the log cannot take, or a replay cache that cannot answer, is a 503, as
elsewhere.

Every answer here, the redirects and error pages included, carries
`Cache-Control: no-store`, a Content-Security-Policy without script, and
`X-Frame-Options: DENY` (`_DpoRoute`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from broker.api.deps import ServicesDep
from broker.api.routes.audit_subjects import CaseDataUnavailableError, gather_access_report
from broker.api.security import dpop_nonces
from broker.audit.access_report import render_access_report_html
from broker.audit.entries import security_event
from broker.cases.requests import SUBJECT_REF
from broker.dpo import views
from broker.dpo.dashboard import CASE_ID, MAX_QUERY_CHARS, build_overview, search
from broker.dpo.session import (
    COOKIE_PATH,
    MAX_LOGIN_CODE_CHARS,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    DpoSession,
    DpoSessionSealer,
    NotAnAuditorError,
    spend_login_proof,
    verify_dpo_login,
)
from broker.errors import (
    BackendUnavailableError,
    InsufficientScopeError,
    InvalidTokenError,
    TrustError,
)
from broker.tracing import parse_traceparent

if TYPE_CHECKING:
    from broker.services import Services

log = logging.getLogger("ketenbroker.dpo")

LOGIN_PATH = "/dpo/login"


class SessionRequiredError(TrustError):
    """No valid DPO session: the browser goes to the login page (already logged)."""


def _record_refusal(
    request: Request, services: Services, *, code: str, detail: str, principal: str | None
) -> None:
    """A refusal at the DPO's edge as a security_event; raises if the log cannot take it."""
    route = request.scope.get("route")
    known = principal if principal and services.convenant.role_of(principal) else None
    services.audit.record(
        security_event(
            time=services.clock.now(),
            # The route template, never the raw path or the submitted values.
            event=f"{request.method} {getattr(route, 'path', 'unrouted')}",
            code=code,
            principal=known,
            trace_id=parse_traceparent(request.headers.get("traceparent")).trace_id,
            detail=detail,
        )
    )
    request.state.refusal_logged = True


def _whose(refusal: Exception) -> str | None:
    """The principal behind a refused but genuine token, for the log; None if unknown."""
    return refusal.principal if isinstance(refusal, NotAnAuditorError) else None


def _html(content: str, *, status: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status)


def _clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


class _DpoRoute(APIRoute):
    """Security headers on every answer; a refused session becomes a redirect to the login.

    FastAPI's exception handlers are the app's, and they answer with JSON
    problem documents; a person's browser needs a page or a redirect, so
    this router turns its own refusals into those itself.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            response: Response
            try:
                response = await handle(request)
            except SessionRequiredError:
                response = RedirectResponse(LOGIN_PATH, status_code=303)
                _clear_session(response)
            except RequestValidationError as e:
                response = _invalid_request(request, e)
            except BackendUnavailableError as e:
                log.warning("dpo page unavailable: %s", e)
                response = _html(
                    views.render_error(
                        title="Tijdelijk niet beschikbaar",
                        message="Het auditlog of het casusregister is nu niet bereikbaar."
                        " Probeer het over enkele ogenblikken opnieuw.",
                    ),
                    status=503,
                )
            response.headers.update(SECURITY_HEADERS)
            return response

        return handler


def _invalid_request(request: Request, error: RequestValidationError) -> Response:
    services: Services = request.app.state.services
    where = [".".join(str(p) for p in e.get("loc", ())) for e in error.errors()][:5]
    try:
        _record_refusal(
            request,
            services,
            code="invalid_request",
            detail=f"validation failed at {where}",
            principal=None,
        )
    except BackendUnavailableError:
        return _html(
            views.render_error(
                title="Niet beschikbaar", message="Het auditlog is niet bereikbaar."
            ),
            status=503,
        )
    return _html(
        views.render_error(
            title="Ongeldig verzoek", message="Dit verzoek heeft ongeldige of te lange waarden."
        ),
        status=400,
    )


router = APIRouter(tags=["dpo"], route_class=_DpoRoute)


def _sealer(services: Services) -> DpoSessionSealer:
    # Derived from the broker's key: every broker process opens every other's sessions.
    return DpoSessionSealer.from_signing_key(services.keys.signing_key("broker"))


def dpo_session(request: Request, services: ServicesDep) -> DpoSession:
    """The verified session behind this request, or a logged refusal and the login page."""
    try:
        return _sealer(services).open(
            request.cookies.get(SESSION_COOKIE),
            convenant=services.convenant,
            now=services.clock.now(),
        )
    except (InvalidTokenError, InsufficientScopeError) as e:
        _record_refusal(request, services, code=e.code, detail=str(e), principal=_whose(e))
        raise SessionRequiredError(str(e)) from e


DpoSessionDep = Annotated[DpoSession, Depends(dpo_session)]


@router.get("/dpo/static/dpo.css", include_in_schema=False)
def stylesheet() -> Response:
    return Response(views.STYLESHEET, media_type="text/css; charset=utf-8")


@router.get("/dpo/static/favicon.svg", include_in_schema=False)
def favicon() -> Response:
    return Response(views.FAVICON, media_type="image/svg+xml")


@router.get("/dpo/login", response_class=HTMLResponse)
def login_page() -> HTMLResponse:
    return _html(views.render_login())


@router.post("/dpo/session", response_class=HTMLResponse)
def start_session(
    request: Request,
    services: ServicesDep,
    # A login code: token, blank, DPoP proof, each bounded like any JWT.
    access_token: Annotated[str, Form(min_length=1, max_length=MAX_LOGIN_CODE_CHARS)],
) -> Response:
    now = services.clock.now()
    try:
        login = verify_dpo_login(
            access_token.strip(),
            keys=services.keys.public_keyset("broker"),
            issuer=services.settings.issuer,
            convenant=services.convenant,
            nonces=dpop_nonces(request),
            now=now,
        )
        # Once only (RFC 9449 §11.1); an unreachable cache is a 503 (_DpoRoute).
        spend_login_proof(login, replay_cache=services.replay_cache)
    except InsufficientScopeError as e:
        _record_refusal(request, services, code=e.code, detail=str(e), principal=_whose(e))
        return _html(
            views.render_login(
                error="Dit token geeft geen toegang tot het FG-dashboard:"
                " daarvoor is de scope audit:read nodig."
            ),
            status=403,
        )
    except InvalidTokenError as e:
        _record_refusal(request, services, code=e.code, detail=str(e), principal=None)
        return _html(
            views.render_login(
                error="De inlogcode is ongeldig, verlopen of al gebruikt. Maak een nieuwe."
            ),
            status=401,
        )
    response = RedirectResponse("/dpo", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        _sealer(services).seal(login.session),
        max_age=login.session.remaining_seconds(now=now),
        path=COOKIE_PATH,
        # Over https the cookie never travels in the clear; loopback development is http.
        secure=services.settings.issuer.startswith("https://"),
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/dpo/logout", response_class=HTMLResponse)
def end_session() -> Response:
    response = _html(views.render_login(notice="U bent uitgelogd."))
    _clear_session(response)
    return response


@router.get("/dpo", response_class=HTMLResponse)
def overview(
    services: ServicesDep,
    session: DpoSessionDep,
    per: Annotated[Literal["day", "week"], Query()] = "day",
) -> HTMLResponse:
    now = services.clock.now()
    data = build_overview(services, now=now, unit=per)
    names = {p.id: p.name for p in services.convenant.partners}
    return _html(views.render_overview(data, session=session, partner_names=names))


@router.get("/dpo/search", response_class=HTMLResponse)
def search_page(
    services: ServicesDep,
    session: DpoSessionDep,
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS)] = "",
) -> HTMLResponse:
    result = search(services, q)
    return _html(views.render_search(result, session=session, now=services.clock.now()))


def _report_html(services: ServicesDep, *, case: str, subject: str) -> str | None:
    """The access report as its own renderer writes it; None when the case's data is gone."""
    try:
        report = gather_access_report(services, case_id=case, subject_ref=subject)
    except CaseDataUnavailableError:
        return None
    return render_access_report_html(report)


def _body_of(document: str) -> str:
    """The inside of a whole HTML document's <body>, to show inside the DPO's own page.

    The report is a self-contained letter with an inline <style>, which this
    site's Content-Security-Policy does not run; its body, every value
    already escaped by its renderer, is styled by the dashboard's sheet.
    """
    start, end = document.find("<body>"), document.rfind("</body>")
    if start < 0 or end < start:
        raise ValueError("expected an HTML document with one <body>, got none")
    return document[start + len("<body>") : end]


CaseParam = Annotated[str, Query(max_length=64, pattern=f"^{CASE_ID.pattern}$")]
SubjectParam = Annotated[str, Query(max_length=64, pattern=SUBJECT_REF)]


@router.get("/dpo/access-report", response_class=HTMLResponse)
def access_report_page(
    services: ServicesDep, session: DpoSessionDep, case: CaseParam, subject: SubjectParam
) -> HTMLResponse:
    now = services.clock.now()
    document = _report_html(services, case=case, subject=subject)
    if document is None:
        return _html(
            views.render_error(
                title="Geen inzageoverzicht",
                message="Deze casus is onbekend, of de persoonsgegevens ervan zijn vernietigd:"
                " het log is dan niet meer aan een persoon te koppelen.",
                session=session,
            ),
            status=404,
        )
    return _html(
        views.render_access_report_page(
            case=case, subject=subject, report_html=_body_of(document), session=session, now=now
        )
    )


@router.get("/dpo/access-report/letter", response_class=HTMLResponse)
def access_report_letter(
    services: ServicesDep, session: DpoSessionDep, case: CaseParam, subject: SubjectParam
) -> Response:
    """The report as its standalone letter, downloaded (not shown) for the gemeente to send."""
    _ = session
    document = _report_html(services, case=case, subject=subject)
    if document is None:
        return _html(
            views.render_error(title="Geen inzageoverzicht", message="Niet beschikbaar."),
            status=404,
        )
    # case and subject match narrow patterns above: safe in a header.
    filename = f"inzageoverzicht-{case}-{subject}.html"
    return Response(
        document,
        media_type="text/html; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
