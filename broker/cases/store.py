"""Persistence of the case register, on SQLite or PostgreSQL.

Two tables. `cases` holds what is not personal data (state, partners,
subject refs and roles) as a JSON document with a version for optimistic
concurrency. `case_secrets` holds the case's wrapped data key and the sealed
personal data (address, subject names and birth dates). Destroying a case's
personal data deletes its `case_secrets` row: without the data key the
sealed values and the pseudonyms can no longer be opened or linked (R7).

Two more tables serve retention (broker/retention). `case_destructions`
notes each destruction and whether the audit log has recorded it yet, so a
crash between destroying and logging is caught up by the next run (the log
must say what was destroyed, issue 4). `case_statistics` holds the counts
that survive (broker/retention/stats.py); a case is counted in the same
transaction that destroys its data.

Deleted bytes must not linger where a key-holder could read them back: on
SQLite the store sets `secure_delete` (freed cells are overwritten with
zeros) and truncates the write-ahead log after a destruction, so the
wrapped key is gone from the files, not only from the table. PostgreSQL
keeps dead rows until VACUUM and old WAL segments until they are recycled;
that, and backups, is for operations (docs/adr/0004).

Listing for jobs (`cases_in_states`) reads the public documents only and
never unwraps a key: a job that decides on states and dates has no need
for names.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Collection, Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import date, datetime
from typing import Any, Protocol

from broker.cases.crypto import (
    new_data_key,
    open_sealed,
    seal,
    unwrap_data_key,
    wrap_data_key,
)
from broker.cases.model import (
    Address,
    Case,
    CaseEvent,
    CaseEventKind,
    CaseKind,
    CasePartner,
    CaseStatus,
    Consent,
    PartnerStatus,
    Subject,
    SubjectRole,
    Urgency,
)
from broker.clock import rfc3339
from broker.errors import BackendUnavailableError, ConflictError, KetenbrokerError
from broker.retention.stats import (
    CaseStatistic,
    StatisticsRow,
    create_statistics_table,
    record_case_statistics,
    statistics,
)
from broker.sql import Cursor, SqlConnection

PERSONAL_LABEL = "personal-data"
LIST_BATCH = 500  # public documents read per query when listing cases for a job

log = logging.getLogger("ketenbroker.cases")


class CaseStore(Protocol):
    def insert(self, case: Case) -> None: ...
    def load(self, case_id: str) -> Case | None: ...
    def load_with_key(self, case_id: str) -> tuple[Case | None, bytes | None]: ...
    def update(self, case: Case) -> Case: ...
    def data_key(self, case_id: str) -> bytes | None: ...
    def destroy_personal_data(
        self,
        case_id: str,
        *,
        now: datetime | None = None,
        statistic: CaseStatistic | None = None,
    ) -> bool: ...
    def case_ids(self) -> list[str]: ...
    def cases_in_states(self, states: Collection[CaseStatus]) -> Iterator[Case]: ...
    def unlogged_destructions(self) -> list[str]: ...
    def mark_destruction_logged(self, case_id: str) -> None: ...
    def statistics(self) -> list[StatisticsRow]: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


def _public_document(case: Case) -> dict[str, Any]:
    return {
        "reference": case.reference,
        "kind": case.kind.value,
        "status": case.status.value,
        "regisseur": case.regisseur,
        "dwelling_owner": case.dwelling_owner,
        "subjects": [{"ref": s.ref, "role": s.role.value} for s in case.subjects],
        "partners": [
            {"partner": p.partner, "status": p.status.value, "since": p.since.isoformat()}
            for p in case.partners
        ],
        "consent": case.consent.value,
        "criteria": list(case.criteria),
        "created_at": case.created_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
        "status_history": [[status, moment.isoformat()] for status, moment in case.status_history],
        "personal_data_destroyed": case.personal_data_destroyed,
        "events": [_event_document(e) for e in case.events],
        "urgency": (
            {"by": case.urgency.by, "since": case.urgency.since.isoformat()}
            if case.urgency
            else None
        ),
        "consent_decided_at": (
            case.consent_decided_at.isoformat() if case.consent_decided_at else None
        ),
    }


def _event_document(event: CaseEvent) -> dict[str, Any]:
    document = {"kind": event.kind.value, "by": event.by, "at": event.at.isoformat()}
    if event.date is not None:
        document["date"] = event.date.isoformat()
    return document


def _event_from(document: dict[str, Any]) -> CaseEvent:
    day = document.get("date")
    return CaseEvent(
        CaseEventKind(document["kind"]),
        document["by"],
        datetime.fromisoformat(document["at"]),
        date.fromisoformat(day) if day else None,
    )


def _personal_document(case: Case) -> dict[str, Any]:
    if case.address is None:
        raise ConflictError("cannot store a case whose personal data was destroyed as new")
    address = case.address
    return {
        "address": {
            "postcode": address.postcode,
            "huisnummer": address.huisnummer,
            "toevoeging": address.toevoeging,
            "plaats": address.plaats,
        },
        "urgent_justification": case.urgency.justification if case.urgency else None,
        "subjects": {
            s.ref: {
                "name": s.name,
                "birth_date": s.birth_date.isoformat() if s.birth_date else None,
            }
            for s in case.subjects
        },
    }


def _case_from(
    case_id: str,
    version: int,
    doc: dict[str, Any],
    personal: dict[str, Any] | None,
    *,
    destroyed: bool | None = None,
) -> Case:
    """A case from its stored parts.

    `destroyed` None: the personal data was read, and its absence means it
    was destroyed. A bool: the caller read only the public document (a
    listing) and knows from the secrets table whether the data still exists.
    """
    if destroyed is None:
        destroyed = personal is None
    decided = doc.get("consent_decided_at")
    people = (personal or {}).get("subjects", {})
    subjects = []
    for s in doc["subjects"]:
        person = people.get(s["ref"], {})
        birth = person.get("birth_date")
        subjects.append(
            Subject(
                ref=s["ref"],
                role=SubjectRole(s["role"]),
                name=person.get("name"),
                birth_date=date.fromisoformat(birth) if birth else None,
            )
        )
    address = None
    if personal is not None:
        a = personal["address"]
        address = Address(a["postcode"], a["huisnummer"], a["toevoeging"], a["plaats"])
    return Case(
        id=case_id,
        reference=doc["reference"],
        kind=CaseKind(doc["kind"]),
        status=CaseStatus(doc["status"]),
        regisseur=doc["regisseur"],
        dwelling_owner=doc["dwelling_owner"],
        address=address,
        subjects=tuple(subjects),
        partners=tuple(
            CasePartner(
                p["partner"], PartnerStatus(p["status"]), datetime.fromisoformat(p["since"])
            )
            for p in doc["partners"]
        ),
        consent=Consent(doc["consent"]),
        criteria=tuple(doc["criteria"]),
        created_at=datetime.fromisoformat(doc["created_at"]),
        updated_at=datetime.fromisoformat(doc["updated_at"]),
        version=version,
        status_history=tuple(
            (status, datetime.fromisoformat(moment)) for status, moment in doc["status_history"]
        ),
        personal_data_destroyed=bool(doc.get("personal_data_destroyed")) or destroyed,
        events=tuple(_event_from(e) for e in doc.get("events", [])),
        urgency=(
            Urgency(
                by=doc["urgency"]["by"],
                since=datetime.fromisoformat(doc["urgency"]["since"]),
                justification=(personal or {}).get("urgent_justification"),
            )
            if doc.get("urgency")
            else None
        ),
        consent_decided_at=datetime.fromisoformat(decided) if decided else None,
    )


class SqlCaseStore:
    """The case register on one SQL connection (see broker/sql.py)."""

    def __init__(self, connection: SqlConnection, *, kek: bytes) -> None:
        self._db = connection
        self._kek = kek
        blob = connection.blob_type()
        try:
            with connection.schema_transaction() as cur:
                cur.execute(
                    "CREATE TABLE IF NOT EXISTS cases ("
                    " id TEXT PRIMARY KEY, version INTEGER NOT NULL, doc TEXT NOT NULL)"
                )
                cur.execute(
                    "CREATE TABLE IF NOT EXISTS case_secrets ("
                    f" case_id TEXT PRIMARY KEY, wrapped_key {blob} NOT NULL,"
                    f" sealed_personal {blob} NOT NULL)"
                )
                # logged: 0 until the audit log holds the destruction's entry.
                cur.execute(
                    "CREATE TABLE IF NOT EXISTS case_destructions ("
                    " case_id TEXT PRIMARY KEY, destroyed_at TEXT, logged INTEGER NOT NULL)"
                )
                create_statistics_table(cur)
                if connection.dialect == "sqlite":
                    # Freed cells are overwritten with zeros, whatever the
                    # library's compile-time default (crypto-shredding, R7).
                    cur.execute("PRAGMA secure_delete = ON")
        except Exception as e:  # any driver failure means the register is unusable
            raise BackendUnavailableError(f"case register schema could not be created: {e}") from e

    def insert(self, case: Case) -> None:
        data_key = new_data_key()
        sealed = seal(
            data_key,
            case_id=case.id,
            label=PERSONAL_LABEL,
            plaintext=json.dumps(_personal_document(case)).encode(),
        )
        wrapped = wrap_data_key(self._kek, case_id=case.id, data_key=data_key)
        with self._guard("insert"), self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO cases (id, version, doc) VALUES (?, ?, ?)",
                (case.id, case.version, json.dumps(_public_document(case))),
            )
            cur.execute(
                "INSERT INTO case_secrets (case_id, wrapped_key, sealed_personal) VALUES (?, ?, ?)",
                (case.id, wrapped, sealed),
            )

    def _secrets(self, case_id: str) -> tuple[bytes, bytes] | None:
        with self._guard("read"), self._db.transaction() as cur:
            cur.execute(
                "SELECT wrapped_key, sealed_personal FROM case_secrets WHERE case_id = ?",
                (case_id,),
            )
            row = cur.fetchone()
        if row is None:
            return None
        data_key = unwrap_data_key(self._kek, case_id=case_id, wrapped=bytes(row[0]))
        return data_key, bytes(row[1])

    def load(self, case_id: str) -> Case | None:
        return self.load_with_key(case_id)[0]

    def load_with_key(self, case_id: str) -> tuple[Case | None, bytes | None]:
        """The case and its data key from one read of its secrets (the exchange hot path)."""
        with self._guard("read"), self._db.transaction() as cur:
            cur.execute("SELECT version, doc FROM cases WHERE id = ?", (case_id,))
            row = cur.fetchone()
        if row is None:
            return None, None
        secrets_row = self._secrets(case_id)
        personal = None
        data_key = None
        if secrets_row is not None:
            data_key, sealed = secrets_row
            plaintext = open_sealed(data_key, case_id=case_id, label=PERSONAL_LABEL, sealed=sealed)
            personal = json.loads(plaintext)
        return _case_from(case_id, int(row[0]), json.loads(row[1]), personal), data_key

    def update(self, case: Case) -> Case:
        """Write a changed case if nobody changed it meanwhile (optimistic concurrency).

        The sealed personal data is re-sealed under the same case key when the
        case still has it (an urgency justification may have been added).
        """
        sealed = None
        if not case.personal_data_destroyed and case.address is not None:
            data_key = self.data_key(case.id)
            if data_key is not None:
                plaintext = json.dumps(_personal_document(case)).encode()
                sealed = seal(data_key, case_id=case.id, label=PERSONAL_LABEL, plaintext=plaintext)
        with self._guard("update"), self._db.transaction() as cur:
            # A writer that read the case before its data was destroyed must
            # not write `personal_data_destroyed: false` back.
            document = _public_document(case)
            if not case.personal_data_destroyed and not self._has_secrets(cur, case.id):
                document["personal_data_destroyed"] = True
            cur.execute(
                "UPDATE cases SET version = ?, doc = ? WHERE id = ? AND version = ?",
                (case.version + 1, json.dumps(document), case.id, case.version),
            )
            changed = cur.rowcount
            if changed == 1 and sealed is not None:
                cur.execute(
                    "UPDATE case_secrets SET sealed_personal = ? WHERE case_id = ?",
                    (sealed, case.id),
                )
        if changed != 1:
            raise ConflictError(f"case {case.id!r} changed concurrently; retry with a fresh read")
        return replace(case, version=case.version + 1)

    def data_key(self, case_id: str) -> bytes | None:
        found = self._secrets(case_id)
        return found[0] if found else None

    @staticmethod
    def _has_secrets(cur: Cursor, case_id: str) -> bool:
        cur.execute("SELECT 1 FROM case_secrets WHERE case_id = ?", (case_id,))
        return cur.fetchone() is not None

    def destroy_personal_data(
        self,
        case_id: str,
        *,
        now: datetime | None = None,
        statistic: CaseStatistic | None = None,
    ) -> bool:
        """Crypto-shred the case: delete its wrapped key and sealed personal data (R7).

        In the same transaction, and only if there was something to destroy:
        the public document says `personal_data_destroyed: true` (its
        version stays, it holds no personal data), the destruction is noted
        as not yet logged, and `statistic` is counted. False when the case
        has nothing left to destroy (already destroyed, or unknown).
        """
        with self._guard("destroy"), self._db.transaction() as cur:
            cur.execute("DELETE FROM case_secrets WHERE case_id = ?", (case_id,))
            deleted = cur.rowcount == 1
            if deleted:
                cur.execute("SELECT doc FROM cases WHERE id = ?", (case_id,))
                row = cur.fetchone()
                if row is not None:
                    document = json.loads(row[0])
                    document["personal_data_destroyed"] = True
                    cur.execute(
                        "UPDATE cases SET doc = ? WHERE id = ?", (json.dumps(document), case_id)
                    )
                cur.execute(
                    "INSERT INTO case_destructions (case_id, destroyed_at, logged)"
                    " VALUES (?, ?, 0)",
                    (case_id, rfc3339(now) if now else None),
                )
                if statistic is not None:
                    record_case_statistics(cur, statistic)
        if deleted:
            self._scrub_write_ahead_log()
        return deleted

    def _scrub_write_ahead_log(self) -> None:
        """SQLite: copy the WAL into the database and truncate it to zero bytes.

        The WAL still holds the page images of the inserted wrapped key; with
        `secure_delete` the checkpoint writes the zeroed page over the old one.
        The checkpoint needs a connection with no transaction open, so it
        uses its own. A checkpoint that cannot finish now (another reader) is
        left to the next destruction or SQLite's automatic checkpoint.
        """
        if self._db.dialect != "sqlite":
            return
        with self._guard("read"), self._db.transaction() as cur:
            cur.execute("PRAGMA database_list")
            files = [str(row[2]) for row in cur.fetchall() if row[1] == "main" and row[2]]
        for path in files:
            try:
                with closing(sqlite3.connect(path, timeout=5.0)) as conn:
                    busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.Error as e:
                # The destruction itself is committed; failing it now would
                # only hide that. Say so loudly instead.
                log.warning("write-ahead log not truncated after a destruction: %s", e)
                continue
            if busy:
                log.warning("write-ahead log busy; truncated at the next destruction or checkpoint")

    def case_ids(self) -> list[str]:
        with self._guard("read"), self._db.transaction() as cur:
            cur.execute("SELECT id FROM cases ORDER BY id")
            return [str(row[0]) for row in cur.fetchall()]

    def cases_in_states(self, states: Collection[CaseStatus]) -> Iterator[Case]:
        """Every case in one of `states`, in id order, without its personal data.

        The cases come from their public documents only: address and names
        are None, and `personal_data_destroyed` says whether the sealed data
        still exists. No key is unwrapped. An empty `states` lists nothing.
        """
        wanted = {CaseStatus(s).value for s in states}
        after = ""
        while wanted:
            with self._guard("read"), self._db.transaction() as cur:
                cur.execute(
                    "SELECT c.id, c.version, c.doc, s.case_id FROM cases c"
                    " LEFT JOIN case_secrets s ON s.case_id = c.id"
                    " WHERE c.id > ? ORDER BY c.id LIMIT ?",
                    (after, LIST_BATCH),
                )
                rows = cur.fetchall()
            for row in rows:
                document = json.loads(row[2])
                if document["status"] in wanted:
                    yield _case_from(
                        str(row[0]), int(row[1]), document, None, destroyed=row[3] is None
                    )
            if len(rows) < LIST_BATCH:
                return
            after = str(rows[-1][0])

    def unlogged_destructions(self) -> list[str]:
        """Cases whose destruction the audit log does not hold yet (a run stopped halfway)."""
        with self._guard("read"), self._db.transaction() as cur:
            cur.execute("SELECT case_id FROM case_destructions WHERE logged = 0 ORDER BY case_id")
            return [str(row[0]) for row in cur.fetchall()]

    def mark_destruction_logged(self, case_id: str) -> None:
        with self._guard("update"), self._db.transaction() as cur:
            cur.execute("UPDATE case_destructions SET logged = 1 WHERE case_id = ?", (case_id,))

    def statistics(self) -> list[StatisticsRow]:
        with self._guard("read"):
            return statistics(self._db)

    def ping(self) -> None:
        with self._guard("ping"), self._db.transaction() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()

    def close(self) -> None:
        self._db.close()

    @staticmethod
    @contextmanager
    def _guard(action: str) -> Iterator[None]:
        """Turn a driver failure into BackendUnavailableError (style.md §11)."""
        try:
            yield
        except KetenbrokerError:
            raise
        except Exception as e:  # any driver failure means the register is unusable
            raise BackendUnavailableError(
                f"case register {action} failed: {type(e).__name__}"
            ) from e
