"""The data-subject access report (AVG art. 15), built from audit entries (pure).

What it does: `build_access_report` turns the log entries of one case into
what the gemeente may tell one person: which partner received which fields
about them, when, on which legal basis and for which processing activity;
which requests about them were refused (codes only); which fields were held
back from a requester because they are special-category data; and the
person's further rights (R8; seed 002 §7.2, §8). `render_access_report_html`
writes it as a self-contained Dutch letter the gemeente can send.

What it does not: read the log, the case register or the data key (the API
edge and the CLI do that and pass the subject's pseudonym in), or hold the
disclosed values (the broker never has them; every partner keeps its own
dossier, R10). It does not decide whether the caller may see a report.

What the report never contains, by construction (the builder copies named
fields into typed values; nothing of an entry passes through whole):

* another person's data: only entries whose `subject` is this person's
  pseudonym count, and no pseudonym at all is copied into the report;
* entries under an active confidentiality hold (`broker.audit.holds`):
  they are dropped before anything is counted, so the report with a held
  entry is identical to the report without it;
* officials: the requester's user id and function are left out. AVG art.
  15(1)(c) asks for the recipients, which are the partner organisations;
  an official's id or function (free text from the requester's system,
  e.g. "wijkagent Noord") is the partner's staff data and can single out
  one employee. The person can ask the partner itself (R10);
* free text: refusal and withholding reasons are reduced to codes, hold
  reasons are never read, and codes that do not look like codes become
  `unknown`;
* withholdings that would disclose something: see `SUBJECT_WITHHELD_REASONS`.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from broker.clock import rfc3339
from broker.convenant import Convenant

REPORT_TITLE = "Overzicht verwerkingen persoonsgegevens (AVG artikel 15)"

# Refusal codes are snake_case identifiers (contract.md); anything else in a
# `code` slot is not a code and could be free text, so it is not copied.
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
UNKNOWN_CODE = "unknown"

# Which withholding codes (policies/disclosure.rego) the person is told
# about, and under which code. An allow-list: a code not named here (a new
# rule, a typo) is left out of the report.
#
# Shown: the special-category rules (R2). The requester was told the same
# ("special-category data is never shared"), and the data is the person's own.
#
# Left out, each because naming it would disclose something:
# * investigation_running: the police withheld nuisance antecedents because
#   an investigation may be running (R3, seed 004 §5.3). Telling the
#   subject would tip them off; the requester got a neutral reason only.
# * not_in_convenant, care_not_known: invisible to the requester too; naming
#   the field could itself reveal e.g. a record or a care relationship.
# * mediation_consent_missing: reveals whether the *other* party to the
#   mediation has consented, which is that person's data.
SUBJECT_WITHHELD_REASONS: Mapping[str, str] = {
    "special_category": "special_category",
    "unknown_category": "special_category",
    "special_category_text": "special_category",
    "text_too_long": "special_category",
}

# Dutch explanations for the letter. A code without one is shown as the code.
REFUSAL_TEXT: Mapping[str, str] = {
    "not_case_partner": "De verzoeker neemt niet deel aan deze casus.",
    "exchange_not_allowed": "Het convenant staat deze uitwisseling voor deze partner niet toe.",
    "purpose_mismatch": "Het opgegeven doel past niet bij de aanpak woonoverlast.",
    "subject_not_in_case": "U bent in deze casus niet als betrokkene geregistreerd.",
    "case_closed": "De casus was al afgesloten.",
    "consent_pending": "De woningcorporatie had nog geen toestemming gegeven.",
    "period_too_wide": "De gevraagde periode was langer dan het convenant toestaat.",
    "policy_unavailable": "Er kon geen beslissing worden genomen; er is niets verstrekt.",
    "provider_unavailable": "Het systeem van de partner antwoordde niet; er is niets verstrekt.",
    "adapter_untrusted": (
        "Het antwoord van de partner was niet te controleren; er is niets verstrekt."
    ),
}
PURPOSE_TEXT: Mapping[str, str] = {"aanpak_woonoverlast": "Aanpak woonoverlast"}
WITHHELD_TEXT: Mapping[str, str] = {
    "special_category": (
        "Bijzondere of strafrechtelijke persoonsgegevens (bijvoorbeeld over gezondheid)"
        " worden binnen de samenwerking nooit gedeeld."
    ),
}


@dataclass(frozen=True)
class Right:
    code: str
    title: str
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"right": self.code, "title": self.title, "text": self.text}


# R8: seed 002 §7.2 (privacy rights, through the gemeente) and §8 (remedies).
RIGHTS: tuple[Right, ...] = (
    Right(
        "rectificatie",
        "Verbetering en aanvulling",
        "U kunt vragen uw persoonsgegevens te verbeteren of aan te vullen als ze feitelijk"
        " onjuist zijn, onvolledig zijn of niet ter zake doen voor het doel waarvoor ze zijn"
        " verzameld, of op een andere manier in strijd met een wet worden gebruikt"
        " (AVG artikel 16).",
    ),
    Right(
        "wissing",
        "Verwijdering",
        "U kunt vragen uw persoonsgegevens te verwijderen (AVG artikel 17).",
    ),
    Right(
        "beperking",
        "Afscherming",
        "U kunt vragen het gebruik van uw persoonsgegevens te beperken, bijvoorbeeld zolang"
        " een verzoek om verbetering wordt beoordeeld (AVG artikel 18).",
    ),
    Right(
        "overdraagbaarheid",
        "Overdracht",
        "U kunt vragen uw persoonsgegevens over te dragen naar een andere instantie"
        " (AVG artikel 20).",
    ),
    Right(
        "bezwaar",
        "Bezwaar tegen de verwerking",
        "U kunt vanwege uw specifieke situatie bezwaar maken tegen de verwerking van uw"
        " persoonsgegevens op grond van artikel 6 lid 1 sub e of sub f AVG, bij de gemeente"
        " en ook bij de verhuurder (AVG artikel 21).",
    ),
    Right(
        "rechtsmiddelen",
        "Bezwaar, beroep en klacht",
        "Tegen de registratie van uw persoonsgegevens door de gemeente kunt u bezwaar maken"
        " en daarna in beroep gaan. U kunt ook een klacht indienen bij de Autoriteit"
        " Persoonsgegevens (AVG artikel 77).",
    ),
)

HOW_TO_ASK = (
    "Een verzoek dient u schriftelijk of via de website in bij de gemeente; de gemeente"
    " stemt het af met de andere partners. Het verantwoordelijke afdelingshoofd beslist"
    " op uw verzoek."
)
# Said in every letter, whatever the log holds, so its presence reveals nothing.
RESTRICTION_NOTE = (
    "Gegevens waarvan de vermelding een lopend onderzoek of de rechten van anderen kan"
    " schaden, kunnen op grond van artikel 23 AVG en artikel 41 UAVG buiten dit overzicht"
    " blijven."
)
CONTENT_NOTE = (
    "De ketenbroker is het beveiligde kanaal waarlangs de partners gegevens uitwisselen."
    " Hij legt vast wie welke gegevens ontving, maar bewaart de inhoud niet; die staat in"
    " het dossier van de partner die de gegevens ontving. U kunt die partner om inzage"
    " vragen."
)


@dataclass(frozen=True)
class Party:
    """A partner organisation: its id and its name in the convenant (None if unknown)."""

    partner: str | None
    name: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {"partner": self.partner, "name": self.name}

    @property
    def label(self) -> str:
        return self.name or self.partner or "onbekend"


@dataclass(frozen=True)
class LegalBasis:
    law: str | None
    article: str | None
    convenant_article: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "law": self.law,
            "article": self.article,
            "convenant_article": self.convenant_article,
        }

    @property
    def label(self) -> str:
        parts = [f"{self.law or ''} {self.article or ''}".strip()]
        if self.convenant_article:
            parts.append(f"convenant {self.convenant_article}")
        return ", ".join(p for p in parts if p)


@dataclass(frozen=True)
class Disclosure:
    """One exchange in which a partner received fields about the person."""

    log_index: int
    time: str
    requester: Party
    provider: Party
    query: str | None
    exchange_title: str | None
    fields_disclosed: tuple[str, ...]
    legal_basis: LegalBasis | None
    processing_activity: str | None
    purpose: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_index": self.log_index,
            "time": self.time,
            "requester": self.requester.to_dict(),
            "provider": self.provider.to_dict(),
            "query": self.query,
            "exchange_title": self.exchange_title,
            "fields_disclosed": list(self.fields_disclosed),
            "legal_basis": self.legal_basis.to_dict() if self.legal_basis else None,
            "processing_activity": self.processing_activity,
            "purpose": self.purpose,
        }


@dataclass(frozen=True)
class Refusal:
    """One request about the person that the broker refused; reasons as codes."""

    log_index: int
    time: str
    requester: Party
    query: str | None
    exchange_title: str | None
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_index": self.log_index,
            "time": self.time,
            "requester": self.requester.to_dict(),
            "query": self.query,
            "exchange_title": self.exchange_title,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Withheld:
    """A field held back from requesters, how often, and why (a code)."""

    query: str | None
    exchange_title: str | None
    field: str
    reason: str
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "exchange_title": self.exchange_title,
            "field": self.field,
            "reason": self.reason,
            "count": self.count,
        }


@dataclass(frozen=True)
class AccessReport:
    subject: str
    case: str
    generated: str
    convenant: Mapping[str, str]
    disclosures: tuple[Disclosure, ...]
    refusals: tuple[Refusal, ...]
    withheld: tuple[Withheld, ...]
    rights: tuple[Right, ...] = RIGHTS

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "case": self.case,
            "generated": self.generated,
            "convenant": dict(self.convenant),
            "disclosures": [d.to_dict() for d in self.disclosures],
            "refusals": [r.to_dict() for r in self.refusals],
            "withheld": [w.to_dict() for w in self.withheld],
            "rights": [r.to_dict() for r in self.rights],
        }


# --- building -----------------------------------------------------------------------


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _code(value: object) -> str:
    return value if isinstance(value, str) and _CODE.fullmatch(value) else UNKNOWN_CODE


def _party(member: object, convenant: Convenant) -> Party:
    partner = _str(member.get("partner")) if isinstance(member, Mapping) else None
    known = convenant.partner(partner) if partner is not None else None
    return Party(partner=partner, name=known.name if known else None)


def _legal_basis(value: object) -> LegalBasis | None:
    if not isinstance(value, Mapping):
        return None
    return LegalBasis(
        law=_str(value.get("law")),
        article=_str(value.get("article")),
        convenant_article=_str(value.get("convenant_article")),
    )


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def _title(query: str | None, convenant: Convenant) -> str | None:
    exchange = convenant.exchange(query) if query is not None else None
    return exchange.title if exchange else None


def build_access_report(
    entries: Iterable[Mapping[str, Any]],
    *,
    case_id: str,
    subject_ref: str,
    subject_pseudonym: str,
    held: Collection[int],
    convenant: Convenant,
    now: datetime,
) -> AccessReport:
    """The access report of `subject_ref` in `case_id` from stored entries.

    `subject_pseudonym` is the person's pseudonym under the case's data key
    (`broker.cases.crypto.pseudonym`); `held` the indexes under an active
    hold (`broker.audit.holds.active_holds`), which are left out entirely.
    Entries of other kinds, cases or subjects are ignored, as are exchange
    entries whose decision is none of permit, partial, deny.
    """
    disclosures: list[Disclosure] = []
    refusals: list[Refusal] = []
    withheld: Counter[tuple[str | None, str, str]] = Counter()
    for entry in entries:
        index = _int(entry.get("index"))
        if (
            index is None
            or index in held
            or entry.get("kind") != "exchange"
            or entry.get("case") != case_id
            or entry.get("subject") != subject_pseudonym
        ):
            continue
        time = _str(entry.get("time")) or ""
        query = _str(entry.get("query"))
        decision = entry.get("decision")
        if decision in ("permit", "partial"):
            disclosures.append(
                Disclosure(
                    log_index=index,
                    time=time,
                    requester=_party(entry.get("requester"), convenant),
                    provider=_party(entry.get("provider"), convenant),
                    query=query,
                    exchange_title=_title(query, convenant),
                    fields_disclosed=_strings(entry.get("fields_disclosed")),
                    legal_basis=_legal_basis(entry.get("legal_basis")),
                    processing_activity=_str(entry.get("processing_activity")),
                    purpose=_str(entry.get("purpose")),
                )
            )
            for item in entry.get("fields_withheld") or ():
                if not isinstance(item, Mapping):
                    continue
                field, code = _str(item.get("field")), _str(item.get("code"))
                shown = SUBJECT_WITHHELD_REASONS.get(code or "")
                if field is not None and shown is not None:
                    withheld[(query, field, shown)] += 1
        elif decision == "deny":
            reasons = entry.get("reasons")
            refusals.append(
                Refusal(
                    log_index=index,
                    time=time,
                    requester=_party(entry.get("requester"), convenant),
                    query=query,
                    exchange_title=_title(query, convenant),
                    reasons=tuple(
                        _code(r.get("code"))
                        for r in (reasons if isinstance(reasons, list) else ())
                        if isinstance(r, Mapping)
                    ),
                )
            )
    return AccessReport(
        subject=subject_ref,
        case=case_id,
        generated=rfc3339(now),
        convenant={"id": convenant.id, "version": convenant.version},
        disclosures=tuple(sorted(disclosures, key=lambda d: d.log_index)),
        refusals=tuple(sorted(refusals, key=lambda r: r.log_index)),
        withheld=tuple(
            Withheld(
                query=query,
                exchange_title=_title(query, convenant),
                field=field,
                reason=reason,
                count=count,
            )
            for (query, field, reason), count in sorted(
                withheld.items(), key=lambda item: (item[0][0] or "", item[0][1], item[0][2])
            )
        ),
    )


# --- the document -------------------------------------------------------------------

_STYLE = """
body { font-family: Georgia, 'Times New Roman', serif; color: #1a1a1a; margin: 2.5em auto;
       max-width: 50em; line-height: 1.45; padding: 0 1.5em; }
h1 { font-size: 1.45em; margin-bottom: 0.2em; }
h2 { font-size: 1.1em; margin-top: 1.8em; border-bottom: 1px solid #999; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1em; }
dl.meta dt { font-weight: bold; }
dl.meta dd { margin: 0; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.45em; text-align: left; vertical-align: top; }
th { background: #eee; }
p.none { font-style: italic; }
p.note { font-size: 0.9em; color: #444; }
footer { margin-top: 2.5em; font-size: 0.8em; color: #555; }
@media print { body { margin: 0; max-width: none; } }
"""


def _e(value: object) -> str:
    """HTML-escape any value, quotes included (values also land in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def _when(moment: str) -> str:
    """An RFC 3339 time as a Dutch reader expects it, in UTC (the log's zone)."""
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        return moment
    if parsed.tzinfo is None:
        return moment
    return parsed.astimezone(UTC).strftime("%d-%m-%Y %H:%M UTC")


def _exchange(title: str | None, query: str | None) -> str:
    return title or query or "onbekend"


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A table whose cells are already escaped HTML."""
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _list(items: Iterable[str]) -> str:
    return "<br>".join(_e(i) for i in items) or "&ndash;"


def render_access_report_html(report: AccessReport) -> str:
    """The report as a self-contained Dutch letter: inline CSS, no scripts, every value escaped."""
    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="nl">',
        "<head>",
        '<meta charset="utf-8">',
        # Defence in depth: even a value that escaped escaping could not load
        # or run anything, and opening the file sends nothing anywhere.
        '<meta http-equiv="Content-Security-Policy"'
        " content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(REPORT_TITLE)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(REPORT_TITLE)}</h1>",
        '<dl class="meta">',
        f"<dt>Betrokkene (kenmerk)</dt><dd>{_e(report.subject)}</dd>",
        f"<dt>Casus</dt><dd>{_e(report.case)}</dd>",
        f"<dt>Convenant</dt><dd>{_e(report.convenant.get('id'))}"
        f" (versie {_e(report.convenant.get('version'))})</dd>",
        f"<dt>Opgesteld op</dt><dd>{_e(_when(report.generated))}</dd>",
        "</dl>",
        "<p>U heeft gevraagd welke persoonsgegevens over u zijn uitgewisseld in de aanpak"
        " woonoverlast. Hieronder staat welke samenwerkingspartner welke gegevens over u heeft"
        " ontvangen, wanneer, op welke wettelijke grondslag en voor welk doel, en welke"
        " verzoeken om gegevens over u zijn geweigerd.</p>",
        f"<p>{_e(CONTENT_NOTE)}</p>",
        "<h2>1. Verstrekte gegevens</h2>",
    ]
    if report.disclosures:
        parts.append(
            _table(
                (
                    "Nr.",
                    "Datum",
                    "Ontvanger",
                    "Verstrekt door",
                    "Soort uitwisseling",
                    "Gegevens",
                    "Grondslag",
                    "Verwerkingsactiviteit",
                    "Doel",
                ),
                (
                    (
                        _e(d.log_index),
                        _e(_when(d.time)),
                        _e(d.requester.label),
                        _e(d.provider.label),
                        _e(_exchange(d.exchange_title, d.query)),
                        _list(d.fields_disclosed),
                        _e(d.legal_basis.label if d.legal_basis else "onbekend"),
                        _e(d.processing_activity or "onbekend"),
                        _e(PURPOSE_TEXT.get(d.purpose or "", d.purpose or "onbekend")),
                    )
                    for d in report.disclosures
                ),
            )
        )
    else:
        parts.append('<p class="none">Er zijn geen gegevens over u verstrekt.</p>')
    parts.append("<h2>2. Geweigerde verzoeken</h2>")
    if report.refusals:
        parts.append(
            _table(
                ("Nr.", "Datum", "Verzoeker", "Soort uitwisseling", "Reden"),
                (
                    (
                        _e(r.log_index),
                        _e(_when(r.time)),
                        _e(r.requester.label),
                        _e(_exchange(r.exchange_title, r.query)),
                        _list(REFUSAL_TEXT.get(code, code) for code in r.reasons),
                    )
                    for r in report.refusals
                ),
            )
        )
    else:
        parts.append('<p class="none">Er zijn geen verzoeken om gegevens over u geweigerd.</p>')
    parts.append("<h2>3. Tegengehouden bijzondere persoonsgegevens</h2>")
    parts.append(
        "<p>Bijzondere en strafrechtelijke persoonsgegevens worden binnen de samenwerking"
        " nooit gedeeld. Stuurde een partner ze toch mee in een antwoord, dan heeft de"
        " ketenbroker ze tegengehouden; de verzoeker heeft ze niet ontvangen.</p>"
    )
    if report.withheld:
        parts.append(
            _table(
                ("Soort uitwisseling", "Gegeven", "Reden", "Aantal keer"),
                (
                    (
                        _e(_exchange(w.exchange_title, w.query)),
                        _e(w.field),
                        _e(WITHHELD_TEXT.get(w.reason, w.reason)),
                        _e(w.count),
                    )
                    for w in report.withheld
                ),
            )
        )
    else:
        parts.append('<p class="none">Geen.</p>')
    parts.append("<h2>4. Uw rechten</h2>")
    parts.append("<dl>")
    parts.extend(f"<dt>{_e(r.title)}</dt><dd>{_e(r.text)}</dd>" for r in report.rights)
    parts.append("</dl>")
    parts.append(f"<p>{_e(HOW_TO_ASK)}</p>")
    parts.append(f'<p class="note">{_e(RESTRICTION_NOTE)}</p>')
    parts.append(
        "<footer>Opgesteld uit het controleerbare verwerkingslogboek van de ketenbroker."
        " Het nummer bij elke regel verwijst naar dat logboek; de functionaris"
        " gegevensbescherming kan elke regel daarin nagaan.</footer>"
    )
    parts.extend(["</body>", "</html>", ""])
    return "\n".join(parts)
