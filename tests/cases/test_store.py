"""The CaseStore contract (broker/cases/store.py over broker/sql.py), on SQLite and PostgreSQL.

Every test runs once per backend (style.md §25). Each backend also offers raw
SQL on the same database through the plain driver, which the tests use to
look at what is really stored and to play the attacker who can write rows;
the store under test never sees a double.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from broker.cases.crypto import DATA_KEY_BYTES, new_data_key, pseudonym
from broker.cases.model import (
    CaseEvent,
    CaseEventKind,
    CaseStatus,
    Consent,
    PartnerStatus,
    Urgency,
    decide_consent,
)
from broker.cases.store import SqlCaseStore
from broker.errors import BackendUnavailableError, ConflictError, TrustError
from broker.sql import SqlConnection
from tests.cases import (
    ADDRESS,
    MELDER_BIRTH,
    MELDER_NAME,
    OVERLASTGEVER_BIRTH,
    OVERLASTGEVER_NAME,
    OWNER,
    T0,
    make_case,
)

CASE_A = "case_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
CASE_B = "case_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
LATER = T0 + timedelta(hours=3)

# Every piece of personal data make_case puts in a case, as it could appear in
# a row: the names, their parts, the birth dates in ISO form, the address.
PERSONAL_NEEDLES = [
    OVERLASTGEVER_NAME,
    "Oosterhuis",
    "Brandsma",
    MELDER_NAME,
    "Reinout",
    OVERLASTGEVER_BIRTH.isoformat(),
    MELDER_BIRTH.isoformat(),
    ADDRESS.postcode,
    ADDRESS.plaats,
]


@dataclass
class Backend:
    """One database, a way to open stores on it, and raw SQL on it (`?` placeholders)."""

    name: str
    connect: Callable[[], SqlConnection]
    rows: Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]
    execute: Callable[[str, tuple[Any, ...]], None]
    opened: list[SqlCaseStore] = field(default_factory=list)

    def store(self, kek: bytes) -> SqlCaseStore:
        store = SqlCaseStore(self.connect(), kek=kek)
        self.opened.append(store)
        return store


def _sqlite_backend(path: Path) -> Backend:
    def rows(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(path)
        try:
            return list(conn.execute(sql, params).fetchall())
        finally:
            conn.close()

    def execute(sql: str, params: tuple[Any, ...]) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute(sql, params)
        finally:
            conn.close()

    return Backend(
        name="sqlite",
        connect=lambda: SqlConnection(dialect="sqlite", sqlite_path=path),
        rows=rows,
        execute=execute,
    )


def _postgres_backend(dsn: str) -> Backend:
    def rows(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return list(conn.execute(sql.replace("?", "%s"), params).fetchall())

    def execute(sql: str, params: tuple[Any, ...]) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.replace("?", "%s"), params)

    return Backend(
        name="postgres",
        connect=lambda: SqlConnection(dialect="postgres", dsn=dsn),
        rows=rows,
        execute=execute,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, sqlite_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        chosen = _sqlite_backend(sqlite_path)
    else:
        chosen = _postgres_backend(request.getfixturevalue("postgres_dsn"))
    yield chosen
    for store in chosen.opened:
        store.close()


@pytest.fixture
def kek() -> bytes:
    return new_data_key()


@pytest.fixture
def store(backend: Backend, kek: bytes) -> SqlCaseStore:
    return backend.store(kek)


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def _raw_dump(backend: Backend) -> bytes:
    """Every cell of both case tables, as bytes."""
    cells = [
        _as_bytes(cell)
        for table in ("cases", "case_secrets")
        for row in backend.rows(f"SELECT * FROM {table}", ())  # noqa: S608  # fixed table names
        for cell in row
    ]
    return b"\x1f".join(cells)


# ---- round trip ----------------------------------------------------------------


def test_loaded_case_equals_the_inserted_one_in_every_field(store: SqlCaseStore) -> None:
    case = make_case(case_id=CASE_A)
    store.insert(case)
    loaded = store.load(CASE_A)
    assert loaded == case
    assert loaded is not None
    assert loaded.subject("og-1") == case.subject("og-1")
    assert loaded.address == ADDRESS
    assert loaded.created_at.utcoffset() == timedelta(0)


def test_unknown_case_loads_as_none(store: SqlCaseStore) -> None:
    store.insert(make_case(case_id=CASE_A))
    assert store.load(CASE_B) is None
    assert store.data_key(CASE_B) is None


def test_load_with_key_gives_the_case_and_its_key_in_one_read(store: SqlCaseStore) -> None:
    inserted = make_case(case_id=CASE_A)
    store.insert(inserted)
    case, key = store.load_with_key(CASE_A)
    assert case == store.load(CASE_A)
    assert key is not None and key == store.data_key(CASE_A)
    assert store.load_with_key(CASE_B) == (None, None)
    store.destroy_personal_data(CASE_A, now=inserted.updated_at, statistic=None)
    destroyed, no_key = store.load_with_key(CASE_A)
    assert destroyed is not None and destroyed.personal_data_destroyed
    assert no_key is None


def test_each_case_gets_its_own_data_key(store: SqlCaseStore) -> None:
    store.insert(make_case(case_id=CASE_A))
    store.insert(make_case(case_id=CASE_B))
    key_a, key_b = store.data_key(CASE_A), store.data_key(CASE_B)
    assert key_a is not None and key_b is not None
    assert len(key_a) == len(key_b) == DATA_KEY_BYTES
    assert key_a != key_b
    assert pseudonym(key_a, "og-1") != pseudonym(key_b, "og-1")


def test_data_key_is_stable_across_updates(store: SqlCaseStore) -> None:
    store.insert(make_case(case_id=CASE_A))
    before = store.data_key(CASE_A)
    loaded = store.load(CASE_A)
    assert loaded is not None
    store.update(replace(loaded, status=CaseStatus.in_behandeling))
    # Pseudonyms in the audit log must keep linking after the case moves on.
    assert store.data_key(CASE_A) == before


JUSTIFICATION = "Dreigende escalatie: buurman Oosterhuis heeft een mes getoond aan omwonenden."


def test_events_and_urgency_round_trip(store: SqlCaseStore) -> None:
    case = replace(
        make_case(case_id=CASE_A),
        events=(
            CaseEvent(CaseEventKind.om_toestemming, "politie-lekstroom", T0),
            CaseEvent(CaseEventKind.melder_geinformeerd, "gemeente-lekstroom", LATER),
        ),
        urgency=Urgency(by="gemeente-lekstroom", since=LATER, justification=JUSTIFICATION),
    )
    store.insert(case)
    assert store.load(CASE_A) == case


def test_urgency_added_by_an_update_is_sealed_and_readable(
    backend: Backend, store: SqlCaseStore
) -> None:
    store.insert(make_case(case_id=CASE_A))
    loaded = store.load(CASE_A)
    assert loaded is not None
    urgency = Urgency(by="gemeente-lekstroom", since=LATER, justification=JUSTIFICATION)
    store.update(replace(loaded, urgency=urgency))
    reloaded = store.load(CASE_A)
    assert reloaded is not None
    assert reloaded.urgency == urgency
    assert reloaded.subject("og-1") == loaded.subject("og-1")
    dump = _raw_dump(backend)
    assert b"gemeente-lekstroom" in dump
    assert JUSTIFICATION.encode() not in dump
    assert b"mes getoond" not in dump


# ---- personal data at rest ---------------------------------------------------


def test_personal_data_is_not_in_plaintext_in_the_database(
    backend: Backend, store: SqlCaseStore
) -> None:
    store.insert(make_case(case_id=CASE_A))
    dump = _raw_dump(backend)
    # The tables were read: what is not personal data is there in the clear.
    for public in (CASE_A, "LEK-2026-0042", "og-1", "overlastgever", "aangemeld", OWNER):
        assert public.encode() in dump
    for needle in PERSONAL_NEEDLES:
        assert needle.encode() not in dump, needle
        assert needle.encode("utf-16-le") not in dump, needle


def test_sqlite_files_hold_no_personal_data_in_plaintext(sqlite_path: Path, kek: bytes) -> None:
    """The same, below SQL: the database file and its write-ahead log."""
    store = SqlCaseStore(SqlConnection(dialect="sqlite", sqlite_path=sqlite_path), kek=kek)
    try:
        store.insert(make_case(case_id=CASE_A))
        files = [p for p in sqlite_path.parent.iterdir() if p.name.startswith(sqlite_path.name)]
        raw = b"".join(p.read_bytes() for p in files)
    finally:
        store.close()
    assert b"LEK-2026-0042" in raw
    for needle in PERSONAL_NEEDLES:
        assert needle.encode() not in raw, needle


# ---- optimistic concurrency ----------------------------------------------------


def test_update_bumps_the_version_and_stores_the_change(store: SqlCaseStore) -> None:
    store.insert(make_case(case_id=CASE_A))
    loaded = store.load(CASE_A)
    assert loaded is not None
    assert loaded.version == 1
    changed = decide_consent(loaded, OWNER, True, now=LATER)
    written = store.update(changed)
    assert written.version == 2
    reloaded = store.load(CASE_A)
    assert reloaded == written
    assert reloaded is not None
    assert reloaded.consent == Consent.granted
    partner = reloaded.partner_entry(OWNER)
    assert partner is not None
    assert partner.status == PartnerStatus.actief
    # The sealed personal data is untouched by an update.
    assert reloaded.subject("og-1") == loaded.subject("og-1")
    assert reloaded.address == ADDRESS


def test_stale_update_is_a_conflict_and_changes_nothing(store: SqlCaseStore) -> None:
    store.insert(make_case(case_id=CASE_A))
    first, second = store.load(CASE_A), store.load(CASE_A)
    assert first is not None and second is not None
    store.update(replace(first, status=CaseStatus.in_behandeling))
    with pytest.raises(ConflictError, match=CASE_A):
        store.update(replace(second, status=CaseStatus.geen_complexe_overlast))
    current = store.load(CASE_A)
    assert current is not None
    assert (current.status, current.version) == (CaseStatus.in_behandeling, 2)


def test_update_of_an_unknown_case_is_a_conflict(store: SqlCaseStore) -> None:
    with pytest.raises(ConflictError):
        store.update(make_case(case_id=CASE_B))
    assert store.load(CASE_B) is None


# ---- crypto-shredding ------------------------------------------------------------


def test_destroyed_case_key_makes_personal_data_unreadable(
    backend: Backend, store: SqlCaseStore
) -> None:
    case = make_case(case_id=CASE_A, status=CaseStatus.geen_complexe_overlast)
    store.insert(case)
    store.insert(make_case(case_id=CASE_B))
    assert store.destroy_personal_data(CASE_A) is True

    loaded = store.load(CASE_A)
    assert loaded is not None
    assert loaded.personal_data_destroyed is True
    assert loaded.address is None
    assert [(s.name, s.birth_date) for s in loaded.subjects] == [(None, None), (None, None)]
    assert store.data_key(CASE_A) is None
    # What is not personal data survives.
    assert [(s.ref, s.role) for s in loaded.subjects] == [(s.ref, s.role) for s in case.subjects]
    assert (loaded.status, loaded.partners, loaded.version) == (case.status, case.partners, 1)
    assert (loaded.reference, loaded.criteria, loaded.consent) == (
        case.reference,
        case.criteria,
        case.consent,
    )
    # No wrapped key or sealed value of the case is left to attack.
    assert backend.rows("SELECT case_id FROM case_secrets", ()) == [(CASE_B,)]
    # The other case keeps its data.
    other = store.load(CASE_B)
    assert other is not None
    assert other.subject("og-1") == case.subject("og-1")


def test_destroying_twice_reports_nothing_left_to_destroy(store: SqlCaseStore) -> None:
    store.insert(make_case(case_id=CASE_A))
    assert store.destroy_personal_data(CASE_A) is True
    assert store.destroy_personal_data(CASE_A) is False
    assert store.destroy_personal_data(CASE_B) is False


def test_destroyed_urgency_keeps_who_and_when_but_not_the_justification(
    store: SqlCaseStore,
) -> None:
    urgency = Urgency(by="gemeente-lekstroom", since=LATER, justification=JUSTIFICATION)
    store.insert(replace(make_case(case_id=CASE_A), urgency=urgency))
    store.destroy_personal_data(CASE_A)
    loaded = store.load(CASE_A)
    assert loaded is not None
    assert loaded.urgency == replace(urgency, justification=None)


def test_destroyed_case_stays_destroyed_through_updates(store: SqlCaseStore) -> None:
    store.insert(make_case(case_id=CASE_A))
    store.destroy_personal_data(CASE_A)
    loaded = store.load(CASE_A)
    assert loaded is not None
    store.update(replace(loaded, status=CaseStatus.in_behandeling))
    again = store.load(CASE_A)
    assert again is not None
    assert again.personal_data_destroyed is True
    assert again.address is None
    assert store.data_key(CASE_A) is None


def test_destroyed_case_cannot_be_inserted_as_new(store: SqlCaseStore) -> None:
    store.insert(make_case(case_id=CASE_A))
    store.destroy_personal_data(CASE_A)
    destroyed = store.load(CASE_A)
    assert destroyed is not None
    with pytest.raises(ConflictError):
        store.insert(replace(destroyed, id=CASE_B))
    assert store.load(CASE_B) is None


# ---- keys and attackers with database access -------------------------------------


def test_store_with_another_kek_cannot_read_the_case(backend: Backend, kek: bytes) -> None:
    backend.store(kek).insert(make_case(case_id=CASE_A))
    thief = backend.store(new_data_key())
    with pytest.raises(TrustError):
        thief.load(CASE_A)
    with pytest.raises(TrustError):
        thief.data_key(CASE_A)


@pytest.mark.parametrize(
    "column",
    [
        # case A's personal data replaced by case B's (sealed under B's key)
        "sealed_personal",
        # case A's wrapped key replaced by case B's (wrapped for case B)
        "wrapped_key",
    ],
)
def test_secrets_copied_from_another_case_do_not_open(
    backend: Backend, store: SqlCaseStore, column: str
) -> None:
    store.insert(make_case(case_id=CASE_A))
    store.insert(make_case(case_id=CASE_B))
    backend.execute(
        f"UPDATE case_secrets SET {column} ="  # noqa: S608  # column from the table above
        f" (SELECT {column} FROM case_secrets WHERE case_id = ?) WHERE case_id = ?",
        (CASE_B, CASE_A),
    )
    with pytest.raises(TrustError):
        store.load(CASE_A)


def test_tampered_sealed_personal_data_does_not_open(backend: Backend, store: SqlCaseStore) -> None:
    store.insert(make_case(case_id=CASE_A))
    ((sealed,),) = backend.rows(
        "SELECT sealed_personal FROM case_secrets WHERE case_id = ?", (CASE_A,)
    )
    tampered = bytearray(bytes(sealed))
    tampered[20] ^= 0x01
    backend.execute(
        "UPDATE case_secrets SET sealed_personal = ? WHERE case_id = ?", (bytes(tampered), CASE_A)
    )
    with pytest.raises(TrustError):
        store.load(CASE_A)


def test_reopened_store_sees_the_same_case(backend: Backend, kek: bytes) -> None:
    first = backend.store(kek)
    case = make_case(case_id=CASE_A)
    first.insert(case)
    key = first.data_key(CASE_A)
    first.close()
    backend.opened.remove(first)

    reopened = backend.store(kek)
    assert reopened.load(CASE_A) == case
    assert reopened.data_key(CASE_A) == key


def test_ping_fails_closed_once_the_database_is_gone(store: SqlCaseStore) -> None:
    store.ping()
    store.close()
    with pytest.raises(BackendUnavailableError, match="ping"):
        store.ping()
    with pytest.raises(BackendUnavailableError):
        store.load(CASE_A)
