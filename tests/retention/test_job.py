"""The retention job (broker/retention/job.py) on real SQLite and PostgreSQL.

Each test names the moment the job runs (`now`); nothing patches a clock.
The cases are built through the register as the API builds them.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from broker.audit.entries import exchange_entry
from broker.audit.store import AuditQuery
from broker.cases.crypto import pseudonym, unwrap_data_key
from broker.cases.model import CaseEventKind, CaseStatus
from broker.convenant import Convenant
from broker.errors import TrustError
from broker.retention.job import run_retention
from broker.retention.scheduler import scheduler_for
from broker.retention.stats import StatisticsRow, statistic_for
from tests.cases import REGISSEUR
from tests.retention import PERSONAL_NEEDLES, closed_case, open_case
from tests.retention.conftest import World

CREATED = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)  # Monday
MAUNDY_THURSDAY = datetime(2026, 4, 2, 8, 0, tzinfo=UTC)  # 10:00 in the Netherlands
NOT_COMPLEX = ((CaseStatus.geen_complexe_overlast, MAUNDY_THURSDAY),)


def _run(world: World, convenant: Convenant, now: datetime) -> list[str]:
    report = run_retention(cases=world.cases, audit=world.audit, convenant=convenant, now=now)
    return report.destroyed


def _retention_entries(world: World) -> list[dict[str, object]]:
    entries = world.audit.entries(AuditQuery(limit=1000))
    return [e.entry for e in entries if e.entry["kind"] == "retention"]


def _secrets_row(world: World, case_id: str) -> tuple[bytes, bytes]:
    (row,) = world.rows(
        f"SELECT wrapped_key, sealed_personal FROM case_secrets WHERE case_id = '{case_id}'"  # noqa: S608  # a case id we made
    )
    return bytes(row[0]), bytes(row[1])


# ---- when ------------------------------------------------------------------------------


def test_not_complex_case_is_destroyed_on_the_fifth_working_day_and_not_before(
    world: World, convenant: Convenant
) -> None:
    # Moved on the Thursday before Easter 2026: Goede Vrijdag, the weekend and
    # Tweede Paasdag do not count, so the fifth working day is Monday 13 April.
    case = open_case(world.cases, created=CREATED, moves=NOT_COMPLEX)
    for not_yet in (
        datetime(2026, 4, 3, 12, 0, tzinfo=UTC),  # Goede Vrijdag
        datetime(2026, 4, 10, 12, 0, tzinfo=UTC),  # Friday: the fourth working day
        datetime(2026, 4, 12, 21, 59, tzinfo=UTC),  # Sunday 23:59 in the Netherlands
    ):
        assert _run(world, convenant, not_yet) == [], not_yet
        assert world.cases.data_key(case.id) is not None
    # Monday 13 April, 00:01 in the Netherlands (still Sunday in UTC).
    assert _run(world, convenant, datetime(2026, 4, 12, 22, 1, tzinfo=UTC)) == [case.id]
    assert world.cases.data_key(case.id) is None


@pytest.mark.parametrize(
    "years",
    [
        # the example convenant's term (seed 002 §7.3)
        5,
        # another convenant's term: the job follows the convenant, not a constant
        2,
    ],
)
def test_closed_case_is_destroyed_when_the_convenants_years_have_passed(
    world: World, convenant: Convenant, years: int
) -> None:
    retention = convenant.terms.retention.model_copy(update={"closed_case_years": years})
    terms = convenant.terms.model_copy(update={"retention": retention})
    chosen = convenant.model_copy(update={"terms": terms})
    closed = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)
    case = closed_case(world.cases, created=CREATED, closed=closed)
    anniversary = closed.replace(year=2026 + years)
    assert _run(world, chosen, anniversary - timedelta(days=1)) == []
    assert world.cases.data_key(case.id) is not None
    assert _run(world, chosen, anniversary) == [case.id]
    assert world.cases.data_key(case.id) is None


def test_cases_still_in_progress_are_never_destroyed(world: World, convenant: Convenant) -> None:
    case = open_case(
        world.cases,
        created=CREATED,
        moves=((CaseStatus.in_behandeling, CREATED), (CaseStatus.casusoverleg, CREATED)),
    )
    report = run_retention(
        cases=world.cases,
        audit=world.audit,
        convenant=convenant,
        now=CREATED + timedelta(days=3650),
    )
    assert (report.destroyed, report.checked) == ([], 0)
    assert world.cases.data_key(case.id) is not None


# ---- what is left afterwards -------------------------------------------------------------


def test_destruction_leaves_nothing_to_recover_names_from(
    world: World, convenant: Convenant
) -> None:
    doomed = open_case(world.cases, created=CREATED, moves=NOT_COMPLEX)
    kept = open_case(world.cases, created=CREATED)
    wrapped, sealed = _secrets_row(world, doomed.id)
    data_key = world.cases.data_key(doomed.id)
    assert data_key is not None
    before = world.table_bytes()
    # The bytes to look for are really there before: this test can fail.
    assert wrapped in before and sealed in before
    if world.name == "sqlite":
        assert wrapped in world.file_bytes()

    assert _run(world, convenant, datetime(2026, 4, 14, tzinfo=UTC)) == [doomed.id]

    after = world.table_bytes()
    for needle in PERSONAL_NEEDLES:
        assert needle.encode() not in after, needle
    assert wrapped not in after and sealed not in after
    if world.name == "sqlite":
        # Not in the table, not in a freed page, not in the write-ahead log.
        files = world.file_bytes()
        assert wrapped not in files and sealed not in files and data_key not in files
    loaded = world.cases.load(doomed.id)
    assert loaded is not None
    assert loaded.personal_data_destroyed is True
    assert loaded.address is None
    assert {(s.name, s.birth_date) for s in loaded.subjects} == {(None, None)}
    (doc,) = world.rows(f"SELECT doc FROM cases WHERE id = '{doomed.id}'")  # noqa: S608  # our id
    assert json.loads(doc[0])["personal_data_destroyed"] is True
    # The other case keeps its data.
    other = world.cases.load(kept.id)
    assert other is not None
    assert other.address is not None
    assert other.subject("og-1") is not None


def test_pseudonyms_in_the_log_can_no_longer_be_linked_to_a_person(
    world: World, convenant: Convenant
) -> None:
    case = open_case(world.cases, created=CREATED, moves=NOT_COMPLEX)
    other = open_case(world.cases, created=CREATED)
    data_key = world.cases.data_key(case.id)
    assert data_key is not None
    subject = pseudonym(data_key, "og-1")
    world.audit.record(
        exchange_entry(
            time=CREATED,
            exchange_id="ex_1",
            trace_id="0" * 32,
            convenant={"id": convenant.id, "version": convenant.version},
            processing_activity="aanpak_woonoverlast",
            legal_basis=None,
            requester={"partner": REGISSEUR, "user": "j.devries", "function": "casusregisseur"},
            provider="politie-lekstroom",
            case=case.id,
            subject=subject,
            query="politie.meldingen",
            purpose="aanpak_woonoverlast",
            decision="permit",
            reasons=[],
            fields_disclosed=["aantal_meldingen"],
            fields_withheld=[],
            policy_version="test",
            payload_hash="0" * 64,
        )
    )
    checkpoint = world.audit.checkpoint()

    assert _run(world, convenant, datetime(2026, 4, 14, tzinfo=UTC)) == [case.id]

    assert world.cases.data_key(case.id) is None
    # The entry still names the pseudonym, and nothing the register holds can
    # produce it again: no key left for the case, and other cases' keys differ.
    entries = [e.entry for e in world.audit.entries(AuditQuery(case=case.id))]
    assert [e["subject"] for e in entries if e["kind"] == "exchange"] == [subject]
    remaining = [
        unwrap_data_key(world.kek, case_id=str(row[0]), wrapped=bytes(row[1]))
        for row in world.rows("SELECT case_id, wrapped_key FROM case_secrets")
    ]
    assert [str(r[0]) for r in world.rows("SELECT case_id FROM case_secrets")] == [other.id]
    for key in remaining:
        for ref in ("og-1", "m-1"):
            assert pseudonym(key, ref) != subject
    # The log is untouched by destruction and still verifies, also against the old checkpoint.
    report = world.audit.verify(trusted=[checkpoint])
    assert report.ok, report.problems
    assert report.size == checkpoint.size + 1


def test_each_destruction_is_one_audit_entry_without_personal_data(
    world: World, convenant: Convenant
) -> None:
    case = open_case(world.cases, created=CREATED, moves=NOT_COMPLEX)
    now = datetime(2026, 4, 14, 6, 0, tzinfo=UTC)
    _run(world, convenant, now)
    (entry,) = _retention_entries(world)
    assert entry == {
        "kind": "retention",
        "time": "2026-04-14T06:00:00.000000Z",
        "case": case.id,
        "event": "personal_data_destroyed",
        "reason": "not_complex_after_5_working_days",
        "due": "2026-04-13",
        "convenant": {"id": convenant.id, "version": convenant.version},
        "retention_terms": {"closed_case_years": 5, "not_complex_working_days": 5},
        "decision": "destroyed",
        "index": entry["index"],
    }
    text = json.dumps(entry)
    for needle in (*PERSONAL_NEEDLES, "og-1", "m-1", case.reference):
        assert needle not in text, needle
    assert world.audit.verify().ok


def test_a_second_run_destroys_nothing_and_logs_nothing(world: World, convenant: Convenant) -> None:
    open_case(world.cases, created=CREATED, moves=NOT_COMPLEX)
    now = datetime(2026, 4, 14, tzinfo=UTC)
    first = run_retention(cases=world.cases, audit=world.audit, convenant=convenant, now=now)
    size, stats = world.audit.checkpoint().size, world.cases.statistics()
    second = run_retention(
        cases=world.cases, audit=world.audit, convenant=convenant, now=now + timedelta(days=1)
    )
    assert (len(first.destroyed), second.destroyed, second.logged_late) == (1, [], [])
    assert second.checked == 1
    assert world.audit.checkpoint().size == size
    assert world.cases.statistics() == stats


def test_a_destruction_the_log_missed_is_logged_by_the_next_run(
    world: World, convenant: Convenant
) -> None:
    # A run that stopped between destroying and logging leaves this state.
    case = open_case(world.cases, created=CREATED, moves=NOT_COMPLEX)
    now = datetime(2026, 4, 14, tzinfo=UTC)
    assert world.cases.destroy_personal_data(case.id, now=now, statistic=None) is True
    assert _retention_entries(world) == []
    report = run_retention(cases=world.cases, audit=world.audit, convenant=convenant, now=now)
    assert (report.destroyed, report.logged_late) == ([], [case.id])
    (entry,) = _retention_entries(world)
    assert (entry["case"], entry["reason"]) == (case.id, "not_complex_after_5_working_days")
    again = run_retention(cases=world.cases, audit=world.audit, convenant=convenant, now=now)
    assert (again.destroyed, again.logged_late) == ([], [])
    assert len(_retention_entries(world)) == 1


# ---- statistics ----------------------------------------------------------------------------


def test_statistics_survive_without_anything_that_identifies_a_case(
    world: World, convenant: Convenant
) -> None:
    first = open_case(world.cases, created=CREATED, moves=NOT_COMPLEX)
    second = open_case(world.cases, created=CREATED, moves=NOT_COMPLEX)
    closed = closed_case(
        world.cases, created=CREATED, closed=datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    )
    _run(world, convenant, datetime(2026, 4, 14, tzinfo=UTC))
    _run(world, convenant, datetime(2031, 11, 3, tzinfo=UTC))
    assert world.cases.statistics() == [
        # Q2 2026: the two not-complex cases, ended within a week of their creation
        StatisticsRow("2026-Q2", "geen_complexe_overlast", "complex", "0-1", 2),
        # Q4 2026: the closed case, 7 months after creation
        StatisticsRow("2026-Q4", "afgesloten", "complex", "6-9", 1),
    ]
    rows = world.rows("SELECT * FROM case_statistics")
    dump = b"\x1f".join(str(cell).encode() for row in rows for cell in row)
    for case in (first, second, closed):
        assert case.id.encode() not in dump
        assert case.reference.encode() not in dump
    for word in ("og-1", REGISSEUR, "2026-03-30", "2026-04-02", *PERSONAL_NEEDLES):
        assert word.encode() not in dump, word
    assert all(len(row) == 5 for row in rows)


def test_a_case_destroyed_twice_is_counted_once(world: World) -> None:
    case = open_case(world.cases, created=CREATED, moves=NOT_COMPLEX)
    statistic = statistic_for(case)
    now = datetime(2026, 4, 14, tzinfo=UTC)
    assert world.cases.destroy_personal_data(case.id, now=now, statistic=statistic) is True
    assert world.cases.destroy_personal_data(case.id, now=now, statistic=statistic) is False
    assert [row.cases for row in world.cases.statistics()] == [1]
    assert world.cases.unlogged_destructions() == [case.id]


# ---- the register's side: listing and stale writers -------------------------------------------


def test_listing_for_jobs_never_opens_personal_data(world: World) -> None:
    case = open_case(world.cases, created=CREATED, moves=NOT_COMPLEX)
    thief = world.open_register(b"x" * 32)  # the wrong key-encryption key
    with pytest.raises(TrustError):
        thief.load(case.id)
    (listed,) = thief.cases_in_states([CaseStatus.geen_complexe_overlast])
    assert (listed.id, listed.status, listed.personal_data_destroyed) == (
        case.id,
        CaseStatus.geen_complexe_overlast,
        False,
    )
    assert listed.address is None
    assert {s.name for s in listed.subjects} == {None}
    assert listed.status_history == case.status_history


def test_listing_pages_through_every_case_and_filters_by_state(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("broker.cases.store.LIST_BATCH", 2)  # five cases over three pages
    ended = {open_case(world.cases, created=CREATED, moves=NOT_COMPLEX).id for _ in range(3)}
    busy = {open_case(world.cases, created=CREATED).id for _ in range(2)}
    listed = [c.id for c in world.cases.cases_in_states([CaseStatus.geen_complexe_overlast])]
    assert sorted(listed) == listed
    assert set(listed) == ended
    assert {c.id for c in world.cases.cases_in_states(list(CaseStatus))} == ended | busy
    assert list(world.cases.cases_in_states([])) == []
    assert sorted(world.cases.case_ids()) == sorted(ended | busy)


def test_a_writer_holding_an_old_copy_cannot_undo_the_destroyed_mark(
    world: World, convenant: Convenant
) -> None:
    case = open_case(world.cases, created=CREATED, moves=NOT_COMPLEX)
    stale = world.cases.load(case.id)
    assert stale is not None and stale.personal_data_destroyed is False
    _run(world, convenant, datetime(2026, 4, 14, tzinfo=UTC))
    # Destruction keeps the version, so the old copy's write goes through.
    world.store.update(stale)  # what a concurrent writer with the old copy does
    (doc,) = world.rows(f"SELECT doc FROM cases WHERE id = '{case.id}'")  # noqa: S608  # our id
    assert json.loads(doc[0])["personal_data_destroyed"] is True
    assert world.cases.data_key(case.id) is None
    # The letter to the overlastgever can still be recorded on the ended case.
    told = world.cases.record_event(
        caller=REGISSEUR,
        case_id=case.id,
        kind=CaseEventKind.overlastgever_geinformeerd,
        now=datetime(2026, 4, 15, tzinfo=UTC),
    )
    assert told.personal_data_destroyed is True
    assert told.events[-1].kind == CaseEventKind.overlastgever_geinformeerd


def test_the_serve_scheduler_runs_the_job_with_the_clocks_now(
    world: World, convenant: Convenant
) -> None:
    case = open_case(world.cases, created=CREATED, moves=NOT_COMPLEX)
    done = threading.Event()

    class Clock:
        """What `serve` passes: the broker's clock, here set past the due date."""

        def now(self) -> datetime:
            done.set()
            return datetime(2026, 4, 14, tzinfo=UTC)

    scheduler = scheduler_for(
        cases=world.cases,
        audit=world.audit,
        convenant=convenant,
        clock=Clock(),
        interval_seconds=3600,
    )
    scheduler.start()
    assert done.wait(5.0)
    scheduler.stop(timeout=5.0)
    assert (scheduler.runs, scheduler.failures) == (1, 0)
    assert world.cases.data_key(case.id) is None
    assert [e["case"] for e in _retention_entries(world)] == [case.id]
