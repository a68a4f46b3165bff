"""The DPO's pages as HTML strings: every value escaped, the chart drawn here.

What it does: renders the login page, the overview with its panels, the
search results and error pages; draws the activity chart as inline SVG from
the counts (`activity_chart`); holds the one style sheet (`STYLESHEET`),
which the broker serves at /dpo/static/dpo.css.

What it does not: read anything or decide anything; the values come in as
`dashboard` and `aggregate` made them. No JavaScript, no external fonts,
images or scripts: the Content-Security-Policy (`session.py`) forbids them
and the page needs none.

Why by hand and not a template engine: a dozen small pages do not justify a
dependency, and one rule is easy to check here: every value passes through
`_e` (html.escape with quotes) before it is written, URLs are built with
urlencode and then escaped. Audit entries carry untrusted text (a refused
client id, an adapter's field name); it must show as text, never run.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final
from urllib.parse import urlencode

from broker.dpo.aggregate import (
    SPECIAL_CATEGORY_CODES,
    LegalBasisKey,
    PeriodCount,
    Unit,
)
from broker.dpo.dashboard import (
    MAX_SEARCH_ROWS,
    Overview,
    SearchResult,
    SubjectLink,
)
from broker.dpo.session import DpoSession

STYLESHEET_PATH: Final = "/dpo/static/dpo.css"
FAVICON_PATH: Final = "/dpo/static/favicon.svg"
MONTHS: Final = ("jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec")

# Dutch labels for the codes a DPO meets; unknown codes show as themselves.
REASON_LABELS: Final[Mapping[str, str]] = {
    "not_case_partner": "Geen partner in deze casus",
    "exchange_not_allowed": "Uitwisseling niet toegestaan",
    "purpose_mismatch": "Doel past niet bij het convenant",
    "subject_not_in_case": "Betrokkene hoort niet bij de casus",
    "case_closed": "Casus is gesloten",
    "consent_pending": "Toestemming corporatie ontbreekt nog",
    "period_too_wide": "Gevraagde periode te ruim",
    "not_regisseur": "Alleen de casusregisseur mag dit",
    "invalid_token": "Ongeldig of verlopen toegangstoken",
    "insufficient_scope": "Onvoldoende bevoegdheid (scope)",
    "invalid_client": "Clientauthenticatie mislukt",
    "invalid_request": "Ongeldig verzoek",
    "policy_unavailable": "Beleidsmotor niet bereikbaar",
    "adapter_unavailable": "Bronsysteem niet bereikbaar",
    "adapter_untrusted": "Antwoord bronsysteem niet vertrouwd",
    "no_reason_recorded": "Geen reden vastgelegd",
}
SPECIAL_LABELS: Final[Mapping[str, str]] = {
    "special_category": "Bijzonder persoonsgegeven (veld)",
    "special_category_text": "Bijzonder gegeven in vrije tekst",
    "unknown_category": "Onbekende categorie (uit voorzorg tegengehouden)",
}
DEADLINE_LABELS: Final[Mapping[str, str]] = {  # broker.deadlines.DeadlineKind
    "corporation_consent": "Toestemming corporatie",
    "intake_decision": "Besluit na intake",
    "inform_overlastgever_start": "Overlastgever informeren (start aanpak)",
    "casusoverleg_agenda": "Agenda casusoverleg versturen",
    "inform_overlastgever_close": "Overlastgever informeren (afsluiting)",
}
DESTRUCTION_LABELS: Final[Mapping[str, str]] = {  # broker.retention.schedule.DestructionReason
    "not_complex_after_5_working_days": "Geen complexe overlast",
    "closed_5_years": "Afgesloten, bewaartermijn verstreken",
}
DECISION_LABELS: Final[Mapping[str, str]] = {
    "permit": "verstrekt",
    "partial": "deels",
    "deny": "geweigerd",
    "intent": "voornemen (nog niet verstrekt)",
    "not_disclosed": "niet verstrekt (herstart)",
    "destroyed": "vernietigd",
    "hold": "afgeschermd",
    "hold_lifted": "afscherming opgeheven",
}
KIND_LABELS: Final[Mapping[str, str]] = {
    "exchange": "Uitwisseling",
    "security_event": "Toegang",
}


def _e(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _n(number: int) -> str:
    """A count the Dutch way: 12.345."""
    return f"{number:,}".replace(",", ".")


def _href(path: str, **params: str) -> str:
    return _e(f"{path}?{urlencode(params)}" if params else path)


def _day(day: date) -> str:
    return f"{day.day} {MONTHS[day.month - 1]}"


def _when(text: object) -> str:
    """An RFC 3339 time as "1 nov 2026 14:05:09 UTC"; anything else escaped as it is."""
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return _e(text)
    if moment.tzinfo is None:
        return _e(text)
    moment = moment.astimezone(UTC)
    return _e(f"{_day(moment.date())} {moment.year} {moment:%H:%M:%S} UTC")


def _cell_time(text: object) -> str:
    """A table cell's time, compact and on one line: "01-11-2026 14:05:09" (UTC)."""
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return f"<td>{_e(text)}</td>"
    if moment.tzinfo is None:
        return f"<td>{_e(text)}</td>"
    moment = moment.astimezone(UTC)
    return f'<td class="when">{_e(f"{moment:%d-%m-%Y %H:%M:%S}")}</td>'


def _date_text(text: object) -> str:
    """An ISO 8601 date or time as "1 nov 2026"."""
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return _e(text)
    return _e(f"{_day(moment.date())} {moment.year}")


def _cell_date(text: object) -> str:
    """A table cell's date: "01-11-2026", or the time too when the value has one (UTC)."""
    value = str(text)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return f"<td>{_e(text)}</td>"
    if "T" in value and moment.tzinfo is not None:
        return _cell_time(value)
    return f'<td class="when">{_e(f"{moment:%d-%m-%Y}")}</td>'


def _label(labels: Mapping[str, str], code: str) -> str:
    label = labels.get(code)
    if label is None:
        return f'<code class="code">{_e(code)}</code>'
    return f'{_e(label)} <code class="code">{_e(code)}</code>'


def _basis(basis: LegalBasisKey) -> str:
    main = " ".join(part for part in (basis.law, basis.article) if part)
    extra = f" · convenant {basis.convenant_article}" if basis.convenant_article else ""
    return _e(main + extra)


def _case_link(case: str, *, short: bool = True) -> str:
    if not case:
        return '<span class="muted">—</span>'
    # Case ids are 37 characters; the first 14 tell cases apart at a glance.
    shown = case[:14] + "…" if short and len(case) > 15 else case
    return (
        f'<a href="{_href("/dpo/search", q=case)}" title="{_e(case)}"><code>{_e(shown)}</code></a>'
    )


def _table(
    headers: Sequence[tuple[str, str]], rows: Iterable[str], *, empty: str, table_id: str = ""
) -> str:
    """A table; `headers` are (text, css class); rows are ready <tr> strings."""
    body = "".join(rows)
    if not body:
        return f'<p class="empty">{_e(empty)}</p>'
    head = "".join(f'<th class="{_e(cls)}" scope="col">{_e(text)}</th>' for text, cls in headers)
    ident = f' id="{_e(table_id)}"' if table_id else ""
    return (
        f'<div class="table-wrap"><table{ident}><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


# --- the page frame ------------------------------------------------------------


def page(
    *,
    title: str,
    body: str,
    session: DpoSession | None = None,
    now: datetime | None = None,
    query: str = "",
) -> str:
    header_tools = ""
    if session is not None:
        expires = session.expires_at.astimezone(UTC)
        header_tools = (
            '<form class="search" method="get" action="/dpo/search" role="search">'
            '<label for="q">Zoek casus of pseudoniem</label>'
            f'<input id="q" name="q" value="{_e(query)}" maxlength="200"'
            ' placeholder="case_… of ps_…" autocomplete="off" spellcheck="false">'
            '<button type="submit">Zoeken</button></form>'
            '<div class="who"><span class="principal">'
            f'<span class="muted">Ingelogd als</span> <strong>{_e(session.principal)}</strong>'
            f'</span><span class="muted">sessie tot {_e(f"{expires:%H:%M:%S}")} UTC</span>'
            '<form method="post" action="/dpo/logout">'
            '<button type="submit" class="link">Uitloggen</button></form></div>'
        )
    stamp = ""
    if now is not None:
        stamp = f'<p class="stamp">Stand van {_when(now.isoformat())}</p>'
    return (
        '<!doctype html><html lang="nl"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(title)} · Ketenbroker FG</title>"
        f'<link rel="stylesheet" href="{STYLESHEET_PATH}">'
        f'<link rel="icon" href="{FAVICON_PATH}" type="image/svg+xml"></head><body>'
        '<header class="top"><a class="brand" href="/dpo">'
        '<span class="mark" aria-hidden="true">KB</span>'
        "<span><strong>Ketenbroker</strong>"
        "<small>Dashboard functionaris gegevensbescherming</small></span></a>"
        f"{header_tools}</header>"
        f'<main>{body}{stamp}</main><footer class="foot">'
        "Alles op deze pagina komt uit het auditlog en het casusregister van de broker."
        " Namen en geboortedata van betrokkenen worden nooit getoond; betrokkenen verschijnen"
        " als casusreferentie en gesleuteld pseudoniem.</footer></body></html>"
    )


# --- login and errors ----------------------------------------------------------


def render_login(*, error: str | None = None, notice: str | None = None) -> str:
    message = ""
    if error:
        message = f'<p class="alert bad" role="alert">{_e(error)}</p>'
    elif notice:
        message = f'<p class="alert info" role="status">{_e(notice)}</p>'
    body = (
        '<section class="panel login" id="login">'
        "<h1>Inloggen als functionaris gegevensbescherming</h1>"
        f"{message}"
        '<ol class="steps">'
        "<li>Maak met uw eigen sleutel een inlogcode (scope <code>audit:read</code>,"
        " eenmalig en twee minuten geldig):"
        "<pre><code>ketenbroker dpo login-code</code></pre></li>"
        "<li>Plak de inlogcode hieronder en log in.</li></ol>"
        '<form method="post" action="/dpo/session" class="stack">'
        '<label for="access_token">Inlogcode</label>'
        '<textarea id="access_token" name="access_token" rows="5" required'
        ' autocomplete="off" spellcheck="false" autocapitalize="off"'
        ' placeholder="eyJ…"></textarea>'
        '<button type="submit" class="primary">Inloggen</button></form>'
        '<p class="muted">De sessie duurt zo lang als het token, hoogstens vijf minuten;'
        " daarna logt u opnieuw in. Het token zelf wordt niet bewaard: de cookie voor /dpo"
        " (HttpOnly, SameSite=Strict) bevat alleen een door de broker ondertekende"
        " sessie.</p></section>"
    )
    return page(title="Inloggen", body=body)


def render_error(*, title: str, message: str, session: DpoSession | None = None) -> str:
    body = (
        f'<section class="panel" id="error"><h1>{_e(title)}</h1>'
        f'<p>{_e(message)}</p><p><a href="/dpo">Terug naar het overzicht</a></p></section>'
    )
    return page(title=title, body=body, session=session)


# --- the chart -------------------------------------------------------------------

CHART_WIDTH: Final = 1200
CHART_HEIGHT: Final = 250
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 48, 12, 18, 42
EXCHANGED_COLOUR: Final = "#1f6f8b"
REFUSED_COLOUR: Final = "#c2410c"


def nice_scale(largest: int, *, max_ticks: int = 5) -> tuple[int, int]:
    """(step, top) for a y axis from 0 to at least `largest`: steps of 1, 2 or 5 x 10^k."""
    largest = max(largest, 1)
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            if math.ceil(largest / step) <= max_ticks:
                return step, step * math.ceil(largest / step)
        magnitude *= 10


def _period_label(start: date, unit: Unit) -> str:
    if unit == "week":
        return f"wk {start.isocalendar().week}"
    return _day(start)


def activity_chart(activity: Sequence[PeriodCount], *, unit: Unit) -> str:
    """Grouped bars, exchanges and refusals per period, as inline SVG (no script)."""
    unit_word = "week" if unit == "week" else "dag"
    n = max(len(activity), 1)
    step, top = nice_scale(max((max(p.exchanged, p.refused) for p in activity), default=0))
    plot_w = CHART_WIDTH - _PAD_LEFT - _PAD_RIGHT
    plot_h = CHART_HEIGHT - _PAD_TOP - _PAD_BOTTOM
    base_y = _PAD_TOP + plot_h
    group = plot_w / n
    bar = min(28.0, group * 0.36)
    parts = [
        f'<svg class="chart" id="activity-chart" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}"'
        f' width="100%" role="img" aria-labelledby="chart-title chart-desc"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">Uitwisselingen en weigeringen per {unit_word}</title>',
        f'<desc id="chart-desc">{len(activity)} perioden;'
        f" uitwisselingen {sum(p.exchanged for p in activity)},"
        f" weigeringen {sum(p.refused for p in activity)}.</desc>",
    ]
    for tick in range(0, top + 1, step):
        y = base_y - plot_h * tick / top
        parts.append(
            f'<line class="grid" x1="{_PAD_LEFT}" y1="{y:.1f}" x2="{CHART_WIDTH - _PAD_RIGHT}"'
            f' y2="{y:.1f}" stroke="#d8dee6" stroke-width="1"/>'
            f'<text class="tick" x="{_PAD_LEFT - 8}" y="{y + 4:.1f}" text-anchor="end"'
            f' font-size="12" fill="#5b6675">{_n(tick)}</text>'
        )
    label_every = max(1, math.ceil(n / 14))
    for i, period in enumerate(activity):
        centre = _PAD_LEFT + group * (i + 0.5)
        label = _period_label(period.start, unit)
        for offset, value, colour, css, word in (
            (-bar - 1, period.exchanged, EXCHANGED_COLOUR, "bar-exchanged", "uitwisselingen"),
            (1, period.refused, REFUSED_COLOUR, "bar-refused", "weigeringen"),
        ):
            height = plot_h * value / top
            x = centre + offset
            parts.append(
                f'<rect class="bar {css}" x="{x:.1f}" y="{base_y - height:.1f}"'
                f' width="{bar:.1f}" height="{height:.1f}" rx="2" fill="{colour}"'
                f' data-value="{value}"><title>{_e(label)}: {_n(value)} {word}</title></rect>'
            )
            if value:
                parts.append(
                    f'<text class="value" x="{x + bar / 2:.1f}" y="{base_y - height - 4:.1f}"'
                    f' text-anchor="middle" font-size="11" fill="{colour}">{_n(value)}</text>'
                )
        if i % label_every == 0 or i == n - 1:
            parts.append(
                f'<text class="label" x="{centre:.1f}" y="{base_y + 18}" text-anchor="middle"'
                f' font-size="12" fill="#37414f">{_e(label)}</text>'
            )
    parts.append(
        f'<line x1="{_PAD_LEFT}" y1="{base_y}" x2="{CHART_WIDTH - _PAD_RIGHT}" y2="{base_y}"'
        ' stroke="#8a96a6" stroke-width="1"/></svg>'
    )
    return "".join(parts)


# --- the overview ------------------------------------------------------------------


def _card(label: str, value: str, *, ident: str, note: str = "", tone: str = "") -> str:
    return (
        f'<div class="card {_e(tone)}" id="{_e(ident)}"><span class="card-label">{_e(label)}</span>'
        f'<span class="card-value">{value}</span>'
        f'<span class="card-note">{note}</span></div>'
    )


def _integrity_panel(overview: Overview) -> str:
    integrity = overview.integrity
    if integrity.verified:
        status = (
            '<p class="status ok" id="integrity-status" data-verified="true">'
            '<span class="dot" aria-hidden="true"></span>Geverifieerd</p>'
            '<p class="muted">De handtekening van het checkpoint klopt met de sleutel van de'
            " broker, en de root hash is opnieuw berekend uit alle opgeslagen entries.</p>"
        )
    else:
        status = (
            '<p class="status bad" id="integrity-status" data-verified="false">'
            '<span class="dot" aria-hidden="true"></span>Niet geverifieerd</p>'
        )
    problems = ""
    if integrity.problems:
        items = "".join(f"<li>{_e(p)}</li>" for p in integrity.problems)
        problems = f'<ul class="problems" id="integrity-problems">{items}</ul>'
    yes, no = '<span class="yes">klopt</span>', '<span class="no">klopt niet</span>'
    return (
        '<section class="panel" id="panel-integrity"><h2>Integriteit van het auditlog</h2>'
        f'{status}{problems}<dl class="facts">'
        f'<dt>Omvang</dt><dd><span id="log-size" data-value="{integrity.size}">'
        f"{_n(integrity.size)}</span> entries</dd>"
        '<dt>Root hash</dt><dd><code class="hash" id="root-hash">'
        f"{_e(integrity.root_hash)}</code></dd>"
        f"<dt>Checkpoint</dt><dd>{_when(integrity.time)}</dd>"
        f'<dt>Sleutel</dt><dd><code class="hash">{_e(integrity.key_id)}</code></dd>'
        f"<dt>Handtekening</dt><dd>{yes if integrity.signature_ok else no}</dd>"
        f"<dt>Herberekend uit entries</dt><dd>{yes if integrity.entries_ok else no}</dd>"
        '</dl><p class="muted">Zelf nagaan: <code>GET /v1/audit/export</code> levert alle'
        " entries en het checkpoint waarmee deze root opnieuw te berekenen is.</p></section>"
    )


def _activity_panel(overview: Overview) -> str:
    summary = overview.summary
    unit = summary.unit
    other: Unit = "week" if unit == "day" else "day"
    other_text = "per week" if other == "week" else "per dag"
    shown = "per dag, laatste 14 dagen" if unit == "day" else "per week, laatste 12 weken"
    rows = "".join(
        f'<tr><th scope="row">{_e(_period_label(p.start, unit))}'
        f' <span class="muted">{_e(p.start.isoformat())}</span></th>'
        f'<td class="num">{_n(p.exchanged)}</td><td class="num">{_n(p.refused)}</td></tr>'
        for p in summary.activity
    )
    return (
        '<section class="panel wide" id="panel-activity">'
        '<div class="panel-head"><h2>Uitwisselingen en weigeringen</h2>'
        f'<a class="toggle" href="{_href("/dpo", per=other)}">Toon {_e(other_text)}</a></div>'
        f'<p class="muted">{_e(shown)} (UTC).</p>'
        '<p class="legend"><span class="swatch exchanged"></span>Uitwisselingen (verstrekt of'
        ' deels verstrekt) <span class="swatch refused"></span>Weigeringen (beleid en toegang)</p>'
        f"{activity_chart(summary.activity, unit=unit)}"
        "<details><summary>Als tabel</summary>"
        + _table(
            [("Periode", ""), ("Uitwisselingen", "num"), ("Weigeringen", "num")],
            [rows],
            empty="Geen perioden.",
            table_id="activity-table",
        )
        + "</details></section>"
    )


def _reasons_panel(overview: Overview) -> str:
    rows = [
        f'<tr data-reason="{_e(r.code)}"><td>{_label(REASON_LABELS, r.code)}</td>'
        f'<td class="num">{_n(r.exchange)}</td><td class="num">{_n(r.edge)}</td>'
        f'<td class="num total">{_n(r.total)}</td></tr>'
        for r in overview.summary.refusals_by_reason
    ]
    return (
        '<section class="panel" id="panel-reasons"><h2>Weigeringen per reden</h2>'
        '<p class="muted">Uitwisseling: geweigerd door het beleid. Toegang: geweigerd aan de'
        " rand (token, bevoegdheid, verzoek).</p>"
        + _table(
            [("Reden", ""), ("Uitwisseling", "num"), ("Toegang", "num"), ("Totaal", "num")],
            rows,
            empty="Nog geen weigeringen.",
            table_id="reasons-table",
        )
        + "</section>"
    )


def _partner(names: Mapping[str, str], partner: str) -> str:
    name = names.get(partner)
    if name is None:
        return f"<code>{_e(partner)}</code>"
    return f'{_e(name)}<br><code class="sub">{_e(partner)}</code>'


def _disclosures_panel(overview: Overview, names: Mapping[str, str]) -> str:
    rows = [
        f'<tr data-recipient="{_e(d.recipient)}" data-provider="{_e(d.provider)}">'
        f"<td>{_partner(names, d.recipient)}</td><td>{_partner(names, d.provider)}</td>"
        f"<td>{_basis(d.legal_basis)}</td>"
        f'<td class="num" data-count="exchanges">{_n(d.exchanges)}</td>'
        f'<td class="num" data-count="fields">{_n(d.fields_disclosed)}</td>'
        f'<td class="fields">{", ".join(_e(f) for f in d.fields)}</td></tr>'
        for d in overview.summary.disclosures
    ]
    return (
        '<section class="panel wide" id="panel-disclosures">'
        "<h2>Verstrekkingen per partner en grondslag</h2>"
        '<p class="muted">Wie kreeg welke velden, van wie, op welke grondslag. Alleen'
        " veldnamen: de waarden zelf staan nooit in het log.</p>"
        + _table(
            [
                ("Ontvanger", ""),
                ("Verstrekker", ""),
                ("Grondslag", ""),
                ("Uitwisselingen", "num"),
                ("Velden", "num"),
                ("Veldnamen", ""),
            ],
            rows,
            empty="Nog geen verstrekkingen.",
            table_id="disclosures-table",
        )
        + "</section>"
    )


def _special_panel(overview: Overview, names: Mapping[str, str]) -> str:
    special = overview.summary.special_categories
    counts = "".join(
        f'<li data-code="{_e(code)}"><span class="big">{_n(count)}</span>'
        f"<span>{_label(SPECIAL_LABELS, code)}</span></li>"
        for code, count in special.by_code
    )
    providers = ", ".join(f"{_e(names.get(p, p))} ({_n(c)})" for p, c in special.by_provider)
    recent = [
        f'<tr data-code="{_e(b.code)}">{_cell_time(b.time)}<td>{_case_link(b.case)}</td>'
        f"<td><code>{_e(b.provider)}</code><br>"
        f'<span class="muted">aan</span> <code>{_e(b.requester)}</code></td>'
        f'<td><code>{_e(b.field)}</code><br><code class="code">{_e(b.code)}</code></td></tr>'
        for b in special.recent
    ]
    return (
        '<section class="panel" id="panel-special">'
        "<h2>Blokkades bijzondere persoonsgegevens</h2>"
        '<p class="muted">Velden die het beleid tegenhield omdat ze strafrechtelijke,'
        " gezondheids- of inkomensgegevens (kunnen) bevatten (R2).</p>"
        f'<ul class="tally">{counts}</ul>'
        + (f'<p class="muted">Per verstrekker: {providers}</p>' if providers else "")
        + "<h3>Laatste blokkades</h3>"
        + _table(
            [
                ("Tijd (UTC)", ""),
                ("Casus", ""),
                ("Verstrekker en vrager", ""),
                ("Veld en code", ""),
            ],
            recent,
            empty="Geen blokkades.",
            table_id="special-table",
        )
        + "</section>"
    )


def _overdue_panel(overview: Overview) -> str:
    rows = [
        f'<tr data-case="{_e(row.case)}" data-kind="{_e(row.kind)}"><td>{_case_link(row.case)}</td>'
        f"<td>{_label(DEADLINE_LABELS, row.kind)}</td>{_cell_date(row.due)}"
        f'<td class="num late">{_n(row.days_late)}</td></tr>'
        for row in overview.overdue
    ]
    return (
        '<section class="panel" id="panel-overdue"><h2>Verlopen termijnen</h2>'
        '<p class="muted">Termijnen uit het convenant die verstreken zijn en nog open staan'
        " (R6).</p>"
        + _table(
            [("Casus", ""), ("Termijn", ""), ("Uiterlijk", ""), ("Dagen te laat", "num")],
            rows,
            empty="Geen verlopen termijnen.",
            table_id="overdue-table",
        )
        + "</section>"
    )


def _destructions_panel(overview: Overview) -> str:
    rows = [
        f'<tr data-case="{_e(row.case)}" data-overdue="{str(row.overdue).lower()}">'
        f"<td>{_case_link(row.case)}</td>{_cell_date(row.due)}"
        f"<td>{_label(DESTRUCTION_LABELS, row.reason)}"
        + (' <span class="pill deny">te laat</span>' if row.overdue else "")
        + "</td></tr>"
        for row in overview.destructions
    ]
    destroyed = overview.summary.totals.destroyed
    return (
        '<section class="panel" id="panel-destructions"><h2>Eerstvolgende vernietigingen</h2>'
        '<p class="muted">Persoonsgegevens die binnen 30 dagen vernietigd moeten zijn, of al'
        " hadden moeten zijn (R7).</p>"
        + _table(
            [("Casus", ""), ("Uiterlijk", ""), ("Grond", "")],
            rows,
            empty="Geen vernietigingen in de komende 30 dagen.",
            table_id="destructions-table",
        )
        + f'<p class="muted" id="destroyed-count">Vernietigingen vastgelegd in het log:'
        f" <strong>{_n(destroyed)}</strong>.</p></section>"
    )


def _recent_refusals_panel(overview: Overview) -> str:
    rows = [
        f"<tr>{_cell_time(r.time)}<td>{_e(KIND_LABELS.get(r.kind, r.kind))}</td>"
        f"<td><code>{_e(r.what)}</code></td><td><code>{_e(r.partner)}</code></td>"
        f"<td>{_case_link(r.case)}</td>"
        f"<td>{'<br>'.join(_label(REASON_LABELS, c) for c in r.codes)}</td>"
        f'<td class="detail">{_e(r.detail)}</td></tr>'
        for r in overview.summary.recent_refusals
    ]
    return (
        '<section class="panel wide" id="panel-recent-refusals"><h2>Laatste weigeringen</h2>'
        + _table(
            [
                ("Tijd", ""),
                ("Soort", ""),
                ("Wat", ""),
                ("Partner", ""),
                ("Casus", ""),
                ("Reden", ""),
                ("Toelichting", ""),
            ],
            rows,
            empty="Nog geen weigeringen.",
            table_id="refusals-table",
        )
        + "</section>"
    )


def render_overview(
    overview: Overview, *, session: DpoSession, partner_names: Mapping[str, str]
) -> str:
    summary, integrity = overview.summary, overview.integrity
    totals = summary.totals
    verified = (
        '<span class="badge ok">Geverifieerd</span>'
        if integrity.verified
        else '<span class="badge bad">Niet geverifieerd</span>'
    )
    overdue = _n(len(overview.overdue))
    cards = (
        '<section class="cards" aria-label="Kerncijfers">'
        + _card("Logomvang", _n(integrity.size), ident="card-size", note=verified)
        + _card(
            "Uitwisselingen",
            _n(totals.exchanged),
            ident="card-exchanged",
            note=f"{_n(totals.permitted)} volledig, {_n(totals.partial)} deels",
            tone="exchanged",
        )
        + _card(
            "Weigeringen",
            _n(totals.refused),
            ident="card-refused",
            note=f"{_n(totals.refused_exchanges)} beleid, {_n(totals.refused_at_edge)} toegang",
            tone="refused",
        )
        + _card(
            "Blokkades bijzondere gegevens",
            _n(summary.special_categories.total),
            ident="card-special",
            note="R2: nooit gedeeld",
            tone="special",
        )
        + _card("Verlopen termijnen", overdue, ident="card-overdue", note="R6", tone="deadline")
        + "</section>"
    )
    body = (
        '<div class="intro"><h1>Overzicht</h1>'
        f'<p class="muted">{_e(overview.convenant)} · versie {_e(overview.convenant_version)}</p>'
        "</div>"
        + cards
        + '<div class="grid">'
        + _integrity_panel(overview)
        + _reasons_panel(overview)
        + _activity_panel(overview)
        + _disclosures_panel(overview, partner_names)
        + _special_panel(overview, partner_names)
        + '<div class="stack-col">'
        + _overdue_panel(overview)
        + _destructions_panel(overview)
        + "</div>"
        + _recent_refusals_panel(overview)
        + "</div>"
    )
    return page(title="Overzicht", body=body, session=session, now=overview.now)


# --- search ------------------------------------------------------------------------


def _subjects_table(subjects: Sequence[SubjectLink]) -> str:
    rows = [
        f'<tr data-ref="{_e(s.ref)}"><td>{_short(s.case, 14)}</td>'
        f"<td><code>{_e(s.ref)}</code></td>"
        f"<td>{_e(s.role)}</td>"
        f"<td><code>{_e(s.pseudonym) if s.pseudonym else 'vernietigd'}</code></td>"
        f'<td><a class="button" href="{_href("/dpo/access-report", case=s.case, subject=s.ref)}">'
        "Inzageoverzicht (AVG art. 15)</a></td></tr>"
        for s in subjects
    ]
    return _table(
        [("Casus", ""), ("Ref", ""), ("Rol", ""), ("Pseudoniem", ""), ("", "")],
        rows,
        empty="Geen betrokkenen gevonden in het register.",
        table_id="subjects-table",
    )


def _fields_cell(disclosed: object, withheld: object) -> str:
    """Disclosed field names, then the withheld ones with their codes (R2 codes marked)."""
    parts = []
    if isinstance(disclosed, list) and disclosed:
        names = ", ".join(_e(name) for name in disclosed)
        parts.append(f'<div class="given"><span class="tag">verstrekt</span> {names}</div>')
    if isinstance(withheld, list) and withheld:
        items = []
        for item in withheld:
            field, code = (
                (item.get("field", ""), str(item.get("code", "")))
                if isinstance(item, Mapping)
                else (item, "")
            )
            css = "r2" if code in SPECIAL_CATEGORY_CODES else ""
            items.append(
                f'<span class="{css}">{_e(field)} <code class="code">{_e(code)}</code></span>'
            )
        parts.append(
            f'<div class="held"><span class="tag">achtergehouden</span>{"".join(items)}</div>'
        )
    return "".join(parts) or '<span class="muted">—</span>'


def _short(value: object, keep: int = 11) -> str:
    """A long id shortened for a table, the whole of it in the title."""
    text = "" if value is None else str(value)
    if len(text) <= keep + 1:
        return f"<code>{_e(text)}</code>" if text else '<span class="muted">—</span>'
    return f'<code title="{_e(text)}">{_e(text[:keep])}…</code>'


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _entry_row(entry: Mapping[str, Any]) -> str:
    decision = str(entry.get("decision", ""))
    requester, provider = _mapping(entry.get("requester")), _mapping(entry.get("provider"))
    on_behalf = " · ".join(_e(v) for v in (requester.get("user"), requester.get("function")) if v)
    route = (
        f"<code>{_e(requester.get('partner') or 'onbekend')}</code>"
        + (f" → <code>{_e(provider.get('partner'))}</code>" if provider.get("partner") else "")
        + (f'<br><span class="muted">{on_behalf}</span>' if on_behalf else "")
    )
    basis = entry.get("legal_basis")
    basis_text = (
        _basis(
            LegalBasisKey(
                str(basis.get("law", "")),
                str(basis.get("article", "")),
                str(basis.get("convenant_article", "")),
            )
        )
        if isinstance(basis, Mapping)
        else ""
    )
    reasons = entry.get("reasons")
    codes = (
        [str(r.get("code", "")) for r in reasons if isinstance(r, Mapping)]
        if isinstance(reasons, list)
        else []
    )
    fields = _fields_cell(entry.get("fields_disclosed"), entry.get("fields_withheld"))
    return (
        f'<tr data-index="{_e(entry.get("index"))}" data-decision="{_e(decision)}">'
        f'<td class="num">{_e(entry.get("index"))}</td>{_cell_time(entry.get("time"))}'
        f'<td><span class="pill {_e(decision)}">'
        f"{_e(DECISION_LABELS.get(decision, decision))}</span></td>"
        f"<td><code>{_e(entry.get('query') or entry.get('event'))}</code></td>"
        f"<td>{route}</td><td>{_short(entry.get('subject'))}</td>"
        f'<td class="basis">{basis_text}</td>'
        f'<td class="fields">{fields}</td>'
        f"<td>{'<br>'.join(_label(REASON_LABELS, c) for c in dict.fromkeys(codes))}</td></tr>"
    )


def render_search(result: SearchResult, *, session: DpoSession, now: datetime) -> str:
    parts = [
        '<div class="intro"><h1>Zoeken</h1><p class="muted">Zoekterm:'
        f' <code id="query">{_e(result.query)}</code></p></div>'
    ]
    if result.kind == "empty":
        parts.append(
            '<section class="panel" id="search-help"><p>Zoek op een casusnummer'
            " (<code>case_…</code>) of het pseudoniem van een betrokkene (<code>ps_…</code>)."
            "</p></section>"
        )
    elif result.kind == "invalid":
        parts.append(
            '<section class="panel" id="search-help"><p class="alert bad">'
            f"“{_e(result.query)}” is geen casusnummer (<code>case_</code> en 32 hexadecimale"
            " tekens) en geen pseudoniem (<code>ps_</code> en 32 hexadecimale tekens).</p>"
            "</section>"
        )
    else:
        facts = "".join(
            f'<dl class="facts case" data-case="{_e(c.id)}">'
            f"<dt>Casus</dt><dd><code>{_e(c.id)}</code></dd>"
            f"<dt>Referentie</dt><dd>{_e(c.reference)}</dd><dt>Soort</dt><dd>{_e(c.kind)}</dd>"
            f"<dt>Status</dt><dd>{_e(c.status)}</dd>"
            f"<dt>Regisseur</dt><dd><code>{_e(c.regisseur)}</code></dd>"
            + ("<dt>Persoonsgegevens</dt><dd>vernietigd</dd>" if c.personal_data_destroyed else "")
            + "</dl>"
            for c in result.cases
        )
        if not result.cases:
            facts = '<p class="empty">Niet (meer) in het casusregister.</p>'
        parts.append(
            '<section class="panel" id="search-case"><h2>Casus en betrokkenen</h2>'
            f"{facts}{_subjects_table(result.subjects)}</section>"
        )
        shown = len(result.entries)
        more = (
            f'<p class="muted">De nieuwste {_n(MAX_SEARCH_ROWS)} van {_n(result.matched)}.</p>'
            if result.matched > shown
            else ""
        )
        parts.append(
            '<section class="panel wide" id="search-entries">'
            "<h2>Entries in het auditlog"
            f' <span class="count" id="match-count">{_n(result.matched)}</span></h2>'
            + more
            + _table(
                [
                    ("#", "num"),
                    ("Tijd (UTC)", ""),
                    ("Besluit", ""),
                    ("Vraag of route", ""),
                    ("Aanvrager → verstrekker", ""),
                    ("Betrokkene", ""),
                    ("Grondslag", ""),
                    ("Velden", ""),
                    ("Reden", ""),
                ],
                [_entry_row(entry) for entry in result.entries],
                empty="Geen entries gevonden.",
                table_id="entries-table",
            )
            + "</section>"
        )
    return page(title="Zoeken", body="".join(parts), session=session, now=now, query=result.query)


def render_access_report_page(
    *, case: str, subject: str, report_html: str, session: DpoSession, now: datetime
) -> str:
    """The access report's own HTML (already escaped by its renderer) in the DPO's frame."""
    body = (
        '<div class="intro"><h1>Inzageoverzicht (AVG art. 15)</h1>'
        f'<p class="muted">Casus <code>{_e(case)}</code> · betrokkene <code>{_e(subject)}</code>'
        f' · <a href="{_href("/dpo/search", q=case)}">terug naar de casus</a>'
        f' · <a href="{_href("/dpo/access-report/letter", case=case, subject=subject)}"'
        ' id="letter-link">download als brief (HTML)</a></p></div>'
        f'<section class="panel wide report" id="access-report">{report_html}</section>'
    )
    return page(title="Inzageoverzicht", body=body, session=session, now=now)


# The browser asks for an icon; without one it logs a 404 on every page.
FAVICON: Final = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="7" fill="#123c5a"/>'
    '<text x="16" y="21" text-anchor="middle" font-family="sans-serif" font-size="14"'
    ' font-weight="700" fill="#ffffff">KB</text></svg>'
)


# --- the style sheet ---------------------------------------------------------------

STYLESHEET: Final = """
:root {
  --ink: #1d2733; --muted: #5b6675; --line: #dfe4ea; --bg: #f3f5f8; --panel: #ffffff;
  --brand: #123c5a; --exchanged: #1f6f8b; --refused: #c2410c; --special: #6d28d9;
  --deadline: #a16207; --ok: #15803d; --bad: #b91c1c;
}
* { box-sizing: border-box; }
html { font-size: 15px; }
body {
  margin: 0; background: var(--bg); color: var(--ink); line-height: 1.45;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans",
    "Liberation Sans", sans-serif;
}
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", "Liberation Mono", monospace;
  font-size: .86em; }
a { color: var(--exchanged); }
.top {
  display: flex; flex-wrap: wrap; align-items: center; gap: 1rem 2rem;
  background: var(--brand); color: #fff; padding: .8rem 2rem;
}
.brand { display: flex; align-items: center; gap: .7rem; color: #fff; text-decoration: none; }
.brand small { display: block; font-size: .8rem; opacity: .8; }
.mark {
  display: inline-grid; place-items: center; width: 2.3rem; height: 2.3rem; border-radius: .5rem;
  background: #fff; color: var(--brand); font-weight: 800; letter-spacing: .02em;
}
.search { display: flex; align-items: center; gap: .5rem; flex: 1 1 22rem; }
.search label { font-size: .85rem; opacity: .85; white-space: nowrap; }
.search input {
  flex: 1; min-width: 12rem; padding: .45rem .6rem; border-radius: .4rem; border: 1px solid #9fb3c8;
  font: inherit; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .9rem;
}
button, .button {
  font: inherit; font-size: .9rem; padding: .45rem .9rem; border-radius: .4rem; cursor: pointer;
  border: 1px solid #c9d3de; background: #fff; color: var(--ink); text-decoration: none;
  display: inline-block;
}
button.primary { background: var(--exchanged); border-color: var(--exchanged); color: #fff; }
.top button { background: #e8f1f8; border-color: #e8f1f8; }
.who { display: flex; align-items: center; gap: .8rem; font-size: .85rem; }
.who .muted { color: #c6d4e1; }
.who form { margin: 0; }
button.link { background: transparent; border: 1px solid #6d8aa5; color: #fff;
  padding: .3rem .7rem; }
main { padding: 1.5rem 2rem 2rem; max-width: 1400px; margin: 0 auto; }
h1 { font-size: 1.5rem; margin: 0 0 .2rem; }
h2 { font-size: 1.1rem; margin: 0 0 .6rem; }
h3 { font-size: .95rem; margin: 1rem 0 .4rem; }
.muted { color: var(--muted); }
.intro { margin-bottom: 1rem; }
.intro p { margin: 0; }
.cards {
  display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 1rem;
  margin-bottom: 1rem;
}
.card {
  background: var(--panel); border-radius: .7rem; padding: .9rem 1.1rem;
  border: 1px solid var(--line);
  border-top: 4px solid var(--brand); display: flex; flex-direction: column; gap: .15rem;
}
.card.exchanged { border-top-color: var(--exchanged); }
.card.refused { border-top-color: var(--refused); }
.card.special { border-top-color: var(--special); }
.card.deadline { border-top-color: var(--deadline); }
.card-label { font-size: .85rem; color: var(--muted); }
.card-value { font-size: 1.9rem; font-weight: 700; font-variant-numeric: tabular-nums; }
.card-note { font-size: .8rem; color: var(--muted); }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 1rem; }
.stack-col { display: grid; gap: 1rem; align-content: start; }
.panel {
  background: var(--panel); border: 1px solid var(--line); border-radius: .7rem;
  padding: 1.1rem 1.3rem; min-width: 0;
}
.panel.wide { grid-column: 1 / -1; }
.panel > .muted { font-size: .85rem; margin-top: 0; }
.panel-head { display: flex; justify-content: space-between; align-items: baseline; gap: 1rem; }
.toggle { font-size: .85rem; }
.status { display: inline-flex; align-items: center; gap: .5rem; font-weight: 700;
  font-size: 1.15rem;
  padding: .35rem .8rem; border-radius: 999px; margin: 0 0 .5rem; }
.status.ok { background: #dcfce7; color: var(--ok); }
.status.bad { background: #fee2e2; color: var(--bad); }
.dot { width: .65rem; height: .65rem; border-radius: 50%; background: currentColor; }
.badge { font-size: .75rem; font-weight: 700; padding: .1rem .5rem; border-radius: 999px; }
.badge.ok { background: #dcfce7; color: var(--ok); }
.badge.bad { background: #fee2e2; color: var(--bad); }
.yes { color: var(--ok); font-weight: 600; }
.no { color: var(--bad); font-weight: 600; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; margin: .5rem 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; min-width: 0; }
.hash { word-break: break-all; }
.problems { color: var(--bad); word-break: break-all; font-size: .85rem; }
.legend { font-size: .85rem; color: var(--muted); display: flex; align-items: center; gap: .4rem; }
.swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px;
  margin-left: .6rem; }
.swatch.exchanged { background: var(--exchanged); }
.swatch.refused { background: var(--refused); }
.chart { display: block; max-width: 100%; height: auto; margin: .4rem 0; }
details summary { cursor: pointer; color: var(--exchanged); font-size: .85rem; }
.table-wrap { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; font-size: .88rem; }
td.when { white-space: nowrap; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .45rem .55rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
thead th { font-size: .78rem; text-transform: uppercase; letter-spacing: .03em; color: var(--muted);
  background: #f8fafc; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
td.total { font-weight: 700; }
.code { color: var(--muted); font-size: .78rem; }
code.sub { color: var(--muted); font-size: .75rem; }
td.fields, td.detail { font-size: .8rem; color: var(--muted); word-break: break-word; }
td.basis { font-size: .82rem; min-width: 11rem; }
.tag { font-size: .7rem; text-transform: uppercase; letter-spacing: .03em; color: var(--muted);
  background: #eef2f6; border-radius: .25rem; padding: 0 .3rem; }
.given { color: var(--ink); margin-bottom: .2rem; }
.held .item { display: block; }
.held .r2 { color: var(--special); font-weight: 600; }
main > .panel { margin-bottom: 1rem; }
.tally { list-style: none; padding: 0; margin: .2rem 0 .6rem; display: grid; gap: .4rem; }
.tally li { display: flex; align-items: baseline; gap: .7rem; }
.tally .big { font-size: 1.5rem; font-weight: 700; color: var(--special); min-width: 2.5rem;
  text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: var(--muted); font-style: italic; margin: .3rem 0; }
.alert { padding: .6rem .9rem; border-radius: .5rem; }
.alert.bad { background: #fee2e2; color: var(--bad); }
.alert.info { background: #e0f2fe; color: #075985; }
.pill { font-size: .75rem; padding: .1rem .5rem; border-radius: 999px; background: #eef2f6; }
.pill.permit { background: #dcfce7; color: var(--ok); }
.pill.partial { background: #fef9c3; color: #854d0e; }
.pill.deny { background: #fee2e2; color: var(--bad); }
.count { background: #eef2f6; border-radius: 999px; padding: .05rem .6rem; font-size: .85rem; }
.login { max-width: 40rem; margin: 2rem auto; }
.steps li { margin-bottom: .6rem; }
.steps pre { background: #0f172a; color: #e2e8f0; padding: .5rem .8rem; border-radius: .4rem;
  margin: .3rem 0; }
.stack { display: grid; gap: .5rem; }
textarea { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .85rem;
  padding: .5rem;
  border: 1px solid #c9d3de; border-radius: .4rem; word-break: break-all; }
.stamp { color: var(--muted); font-size: .8rem; margin-top: 1.2rem; }
.foot { color: var(--muted); font-size: .8rem; padding: 0 2rem 2rem; max-width: 1400px;
  margin: 0 auto; }
.report h1 { font-size: 1.15rem; }
.report h2 { font-size: 1rem; margin-top: 1.3rem; }
.report dl { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; }
.report dt { color: var(--muted); }
.report dd { margin: 0; }
.report table { margin: .4rem 0; }
.report .none { color: var(--muted); font-style: italic; }
@media (max-width: 900px) { .grid { grid-template-columns: 1fr; } main { padding: 1rem; } }
"""
