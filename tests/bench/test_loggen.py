"""The audit-log generator behind bench/audit_scale.py: realistic, deterministic, no names.

A benchmark on a log that is not shaped like the real one measures the wrong
thing, and one that leaks a fixture person's name into a "realistic" log
would teach the wrong habit; these tests hold the generator to both.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bench.loggen import generate_entries, populate
from broker.audit import AuditLog, AuditQuery, AuditStore, PostgresAuditStore, SqliteAuditStore
from broker.audit.entries import exchange_entry, security_event
from broker.clock import SystemClock
from broker.convenant import Convenant
from broker.keys import generate_signing_key
from tests.adapters.helpers import AHMET, FATIMA, JOOP, MARCO, SANNE, STRANGER

START = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
COUNT = 5_000

# The keys each builder in broker/audit/entries.py produces: the contract.
EXCHANGE_KEYS = set(
    exchange_entry(
        time=START,
        exchange_id="ex_0",
        trace_id="0",
        convenant={"id": "c", "version": "1"},
        processing_activity=None,
        legal_basis=None,
        requester={"partner": None},
        provider=None,
        case="case_0",
        subject=None,
        query="q",
        purpose="p",
        decision="deny",
        reasons=[],
        fields_disclosed=[],
        fields_withheld=[],
        policy_version="v",
        payload_hash=None,
    )
)
SECURITY_KEYS = set(
    security_event(time=START, event="e", code="c", principal=None, trace_id="0", detail="d")
)
PSEUDONYM = re.compile(r"^ps_[0-9a-f]{32}$")
CASE_ID = re.compile(r"^case_[0-9a-f]{32}$")


def _log(convenant: Convenant, *, seed: int = 7, count: int = COUNT) -> list[dict[str, Any]]:
    return list(
        generate_entries(
            count=count, start=START, years=2.0, seed=seed, partners=convenant, cases=200
        )
    )


@pytest.fixture(scope="module")
def entries(convenant: Convenant) -> list[dict[str, Any]]:
    return _log(convenant)


def test_same_seed_gives_the_same_log_byte_for_byte(
    convenant: Convenant, entries: list[dict[str, Any]]
) -> None:
    assert json.dumps(_log(convenant)) == json.dumps(entries)


def test_another_seed_gives_another_log(
    convenant: Convenant, entries: list[dict[str, Any]]
) -> None:
    assert json.dumps(_log(convenant, seed=8)) != json.dumps(entries)


def test_times_strictly_increase_within_the_years(entries: list[dict[str, Any]]) -> None:
    times = [datetime.fromisoformat(e["time"]) for e in entries]
    assert all(a < b for a, b in itertools.pairwise(times))
    assert times[0] >= START
    # Random gaps may overshoot the span a little, never by months.
    assert times[-1] < START + timedelta(days=2 * 366 + 30)
    # Spread over the years, not bunched at the start.
    assert times[len(times) // 2] > START + timedelta(days=180)


@pytest.mark.parametrize(
    "start",
    [
        datetime(2026, 1, 5, 3, 0, tzinfo=UTC),  # before hours: that morning
        datetime(2026, 1, 5, 18, 0, tzinfo=UTC),  # after hours: the next morning
        datetime(2026, 1, 9, 18, 0, tzinfo=UTC),  # Friday evening: Monday
        datetime(2026, 1, 10, 12, 0, tzinfo=UTC),  # Saturday: Monday
        datetime(2026, 1, 5, 10, 0, tzinfo=timezone(timedelta(hours=1))),  # CET, not UTC
    ],
)
def test_first_entry_never_precedes_start(convenant: Convenant, start: datetime) -> None:
    # 10 000 a year: the first gap is minutes of working time, not months.
    first = next(
        generate_entries(count=10_000, start=start, years=1.0, seed=1, partners=convenant, cases=1)
    )
    moment = datetime.fromisoformat(first["time"])
    assert moment >= start
    assert moment - start < timedelta(days=3)


def test_times_fall_in_working_hours_on_weekdays(entries: list[dict[str, Any]]) -> None:
    times = [datetime.fromisoformat(e["time"]) for e in entries]
    assert all(t.weekday() < 5 and 7 <= t.hour < 17 for t in times)


def test_every_entry_has_exactly_the_contract_fields_and_no_index(
    entries: list[dict[str, Any]],
) -> None:
    for entry in entries:
        expected = EXCHANGE_KEYS if entry["kind"] == "exchange" else SECURITY_KEYS
        assert set(entry) == expected
        assert "index" not in entry  # the store adds it


def test_exchanges_use_the_convenants_partners_types_and_legal_bases(
    convenant: Convenant, entries: list[dict[str, Any]]
) -> None:
    partners = {p.id for p in convenant.partners}
    for entry in (e for e in entries if e["kind"] == "exchange"):
        exchange_type = convenant.exchange(entry["query"])
        assert exchange_type is not None
        assert entry["requester"]["partner"] in partners
        assert entry["provider"]["partner"] in {*partners, None}
        assert CASE_ID.match(entry["case"])
        assert PSEUDONYM.match(entry["subject"])
        if entry["legal_basis"] is not None:
            assert entry["legal_basis"] == exchange_type.legal_basis.model_dump()
        disclosed = set(entry["fields_disclosed"])
        assert disclosed <= set(exchange_type.fields)
        if entry["decision"] == "deny":
            assert not disclosed and entry["reasons"] and entry["payload_hash"] is None
        else:
            assert entry["payload_hash"].startswith("sha256:")


def test_kinds_decisions_and_reasons_have_a_plausible_mix(
    entries: list[dict[str, Any]],
) -> None:
    kinds = Counter(e["kind"] for e in entries)
    decisions = Counter(e["decision"] for e in entries if e["kind"] == "exchange")
    exchanges = kinds["exchange"]
    assert 0.005 < kinds["security_event"] / len(entries) < 0.05
    # Most questions are answered in full; partial and deny are common but not the rule.
    assert decisions["permit"] / exchanges > 0.5
    assert 0.05 < decisions["partial"] / exchanges < 0.35
    assert 0.05 < decisions["deny"] / exchanges < 0.3
    codes = {r["code"] for e in entries for r in e["reasons"]}
    assert {"exchange_not_allowed", "consent_pending", "invalid_client"} <= codes
    withheld = {w["code"] for e in entries if e["kind"] == "exchange" for w in e["fields_withheld"]}
    assert {"investigation_running", "mediation_consent_missing"} <= withheld


def test_cases_have_a_few_subjects_each(entries: list[dict[str, Any]]) -> None:
    subjects: dict[str, set[str]] = {}
    for entry in (e for e in entries if e["kind"] == "exchange"):
        subjects.setdefault(entry["case"], set()).add(entry["subject"])
    assert 50 <= len(subjects) <= 200
    assert all(1 <= len(s) <= 4 for s in subjects.values())
    # Pseudonyms are per case: no subject shows up under two cases.
    seen = [s for found in subjects.values() for s in found]
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    "person",
    [
        MARCO,  # overlastgever in the demo and the e2e fixtures
        FATIMA,
        JOOP,
        SANNE,
        AHMET,
        STRANGER,  # asked about but not a party
    ],
)
def test_no_fixture_person_appears_in_the_log(
    person: tuple[str, Any, str, dict[str, Any]], entries: list[dict[str, Any]]
) -> None:
    name, birth_date, _, address = person
    text = json.dumps(entries, ensure_ascii=False)
    for part in [name, *(p for p in name.split() if len(p) >= 4)]:
        assert part not in text
    assert birth_date.isoformat() not in text
    assert address["postcode"] not in text


def test_populated_sqlite_log_verifies(convenant: Convenant, tmp_path: Path) -> None:
    store = SqliteAuditStore(tmp_path / "audit.sqlite3")
    try:
        seen: list[int] = []
        # 2 000 in batches of 300: several full batches and a short last one.
        added = populate(store, _log(convenant, count=2_000), 300, on_batch=seen.append)
        assert added == 2_000 and store.size() == 2_000
        assert seen == [*range(300, 2_000, 300), 2_000]
        log = AuditLog(store=store, signing_key=generate_signing_key(), clock=SystemClock())
        report = log.verify()
        assert report.ok, report.problems
        assert report.size == 2_000
    finally:
        store.close()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"count": -1}, "count"),  # a negative count is a caller's mistake, not an empty log
        ({"cases": 0}, "cases"),  # exchanges need a case
        ({"years": 0}, "years"),  # no span to spread the entries over
    ],
)
def test_generator_refuses_impossible_arguments(
    convenant: Convenant, arguments: dict[str, Any], message: str
) -> None:
    kwargs: dict[str, Any] = {
        "count": 10,
        "start": START,
        "years": 1.0,
        "seed": 1,
        "partners": convenant,
        "cases": 5,
        **arguments,
    }
    with pytest.raises(ValueError, match=message):
        next(generate_entries(**kwargs))


def test_generator_refuses_a_naive_start(convenant: Convenant) -> None:
    with pytest.raises(ValueError, match="timezone"):
        next(
            generate_entries(
                count=1,
                start=datetime(2026, 1, 5),  # naive: the mistake under test
                years=1.0,
                seed=1,
                partners=convenant,
                cases=1,
            )
        )


def test_populate_refuses_an_empty_batch(tmp_path: Path) -> None:
    store = SqliteAuditStore(tmp_path / "audit.sqlite3")
    try:
        with pytest.raises(ValueError, match="batch"):
            populate(store, [], 0)
    finally:
        store.close()


def _matches(entry: dict[str, Any], q: AuditQuery) -> bool:
    """What AuditQuery's docstring says a filter means, over one stored entry."""
    index = entry["index"]
    parties = {entry.get("requester", {}).get("partner"), entry.get("provider", {}).get("partner")}
    return (
        (q.case is None or entry.get("case") == q.case)
        and (q.partner is None or q.partner in parties)
        and (q.decision is None or entry.get("decision") == q.decision)
        and (q.time_from is None or entry["time"] >= q.time_from)
        and (q.time_to is None or entry["time"] < q.time_to)
        and (q.after_index is None or index > q.after_index)
        and (q.before_index is None or index < q.before_index)
    )


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_every_query_form_selects_what_the_filters_mean(
    request: pytest.FixtureRequest, convenant: Convenant, tmp_path: Path, backend: str
) -> None:
    # broker/audit/_rows.query_sql picks among SQL forms for speed (partner
    # branches, time windows read by time); on a realistic log each must
    # select exactly the first `limit` matching entries, on both engines.
    store: AuditStore = (
        SqliteAuditStore(tmp_path / "audit.sqlite3")
        if backend == "sqlite"
        else PostgresAuditStore(request.getfixturevalue("postgres_dsn"))
    )
    try:
        populate(store, _log(convenant, count=3_000), 1_000)
        stored = [store.get(i) for i in range(3_000)]
        entries = [s.entry for s in stored if s is not None]
        rng = random.Random(11)  # noqa: S311  # reproducible filters, nothing secret
        cases = sorted({e["case"] for e in entries if e["kind"] == "exchange"})
        partners = [p.id for p in convenant.partners] + ["fg-lekstroom"]
        times = sorted(e["time"] for e in entries)
        for _ in range(300):
            window = sorted(rng.sample(times, 2))
            q = AuditQuery(
                case=rng.choice(cases) if rng.random() < 0.3 else None,
                partner=rng.choice(partners) if rng.random() < 0.6 else None,
                decision=rng.choice(["permit", "partial", "deny"]) if rng.random() < 0.3 else None,
                time_from=window[0] if rng.random() < 0.5 else None,
                time_to=window[1] if rng.random() < 0.5 else None,
                after_index=rng.randrange(-1, 3_000) if rng.random() < 0.5 else None,
                before_index=rng.randrange(0, 3_000) if rng.random() < 0.2 else None,
                limit=rng.choice([1, 7, 100, 1000]),
            )
            expected = [e["index"] for e in entries if _matches(e, q)][: q.limit]
            assert [s.index for s in store.query(q)] == expected, q
    finally:
        store.close()
