"""Persistence of the case register, on SQLite or PostgreSQL.

Two tables. `cases` holds what is not personal data (state, partners,
subject refs and roles) as a JSON document with a version for optimistic
concurrency. `case_secrets` holds the case's wrapped data key and the sealed
personal data (address, subject names and birth dates). Destroying a case's
personal data deletes its `case_secrets` row: without the data key the
sealed values and the pseudonyms can no longer be opened or linked (R7).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
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
from broker.errors import BackendUnavailableError, ConflictError, KetenbrokerError
from broker.sql import SqlConnection

PERSONAL_LABEL = "personal-data"


class CaseStore(Protocol):
    def insert(self, case: Case) -> None: ...
    def load(self, case_id: str) -> Case | None: ...
    def update(self, case: Case) -> Case: ...
    def data_key(self, case_id: str) -> bytes | None: ...
    def destroy_personal_data(self, case_id: str) -> bool: ...
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
        "events": [{"kind": e.kind.value, "by": e.by, "at": e.at.isoformat()} for e in case.events],
        "urgency": (
            {"by": case.urgency.by, "since": case.urgency.since.isoformat()}
            if case.urgency
            else None
        ),
    }


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
    case_id: str, version: int, doc: dict[str, Any], personal: dict[str, Any] | None
) -> Case:
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
        personal_data_destroyed=bool(doc.get("personal_data_destroyed")) or personal is None,
        events=tuple(
            CaseEvent(CaseEventKind(e["kind"]), e["by"], datetime.fromisoformat(e["at"]))
            for e in doc.get("events", [])
        ),
        urgency=(
            Urgency(
                by=doc["urgency"]["by"],
                since=datetime.fromisoformat(doc["urgency"]["since"]),
                justification=(personal or {}).get("urgent_justification"),
            )
            if doc.get("urgency")
            else None
        ),
    )


class SqlCaseStore:
    """The case register on one SQL connection (see broker/sql.py)."""

    def __init__(self, connection: SqlConnection, *, kek: bytes) -> None:
        self._db = connection
        self._kek = kek
        blob = connection.blob_type()
        try:
            with connection.transaction() as cur:
                cur.execute(
                    "CREATE TABLE IF NOT EXISTS cases ("
                    " id TEXT PRIMARY KEY, version INTEGER NOT NULL, doc TEXT NOT NULL)"
                )
                cur.execute(
                    "CREATE TABLE IF NOT EXISTS case_secrets ("
                    f" case_id TEXT PRIMARY KEY, wrapped_key {blob} NOT NULL,"
                    f" sealed_personal {blob} NOT NULL)"
                )
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
        with self._guard("read"), self._db.transaction() as cur:
            cur.execute("SELECT version, doc FROM cases WHERE id = ?", (case_id,))
            row = cur.fetchone()
        if row is None:
            return None
        secrets_row = self._secrets(case_id)
        personal = None
        if secrets_row is not None:
            data_key, sealed = secrets_row
            plaintext = open_sealed(data_key, case_id=case_id, label=PERSONAL_LABEL, sealed=sealed)
            personal = json.loads(plaintext)
        return _case_from(case_id, int(row[0]), json.loads(row[1]), personal)

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
            cur.execute(
                "UPDATE cases SET version = ?, doc = ? WHERE id = ? AND version = ?",
                (case.version + 1, json.dumps(_public_document(case)), case.id, case.version),
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

    def destroy_personal_data(self, case_id: str) -> bool:
        with self._guard("destroy"), self._db.transaction() as cur:
            cur.execute("DELETE FROM case_secrets WHERE case_id = ?", (case_id,))
            deleted = cur.rowcount
        return deleted == 1

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
