"""The decision log: every policy decision, replayable, without readable personal data.

Like OPA's decision log, each record holds the entrypoint, the input, the
result, the policy version and the exchange id. The input is masked before
it is stored: the only personal data a policy input carries is free text
from a provider's answer (R2 scan), and each such text is sealed with the
case's data key. The DPO can therefore replay a decision with the same
policy version and get the same result while the case exists, and after
the case's key is destroyed (R7) the texts are gone with it.

Records live in the broker's database beside the case register; like the
audit log they are append-only, and a decision that cannot be recorded is
not acted on (the exchange answers 503). A record is committed without its
own flush to disk: it survives a crash of the broker, and a power cut can
lose only the last records, never the audit entries that state each
decision's outcome (docs/decisions.md, "Decision log commits").
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from broker.cases.crypto import open_sealed, seal
from broker.clock import rfc3339
from broker.errors import AuditWriteError, KetenbrokerError
from broker.sql import SqlConnection

TEXT_LABEL = "decision-log-text"
SEALED_KEY = "sealed"


@dataclass(frozen=True)
class DecisionRecord:
    exchange: str
    entrypoint: str
    policy_version: str
    time: str
    case: str | None
    input: dict[str, Any]
    result: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "entrypoint": self.entrypoint,
            "policy_version": self.policy_version,
            "time": self.time,
            "case": self.case,
            "input": self.input,
            "result": self.result,
        }


def _map_texts(document: dict[str, Any], transform: Callable[[Any], Any]) -> dict[str, Any]:
    """A copy of a policy input with every answer-field text replaced by transform(text)."""
    answer = document.get("answer")
    if not isinstance(answer, dict):
        return document
    fields = [
        {**field, "texts": [transform(text) for text in field.get("texts", [])]}
        for field in answer.get("fields", [])
    ]
    return {**document, "answer": {**answer, "fields": fields}}


def mask_input(
    document: dict[str, Any], *, case_id: str | None, data_key: bytes | None
) -> dict[str, Any]:
    """Seal every free text under the case key; without a key, drop the texts."""

    def sealed(text: Any) -> Any:
        if data_key is None or case_id is None:
            return {SEALED_KEY: None}
        token = seal(data_key, case_id=case_id, label=TEXT_LABEL, plaintext=str(text).encode())
        return {SEALED_KEY: base64.b64encode(token).decode("ascii")}

    return _map_texts(document, sealed)


def unmask_input(document: dict[str, Any], *, case_id: str, data_key: bytes) -> dict[str, Any]:
    """The original policy input of a masked record (for replay)."""

    def opened(token: Any) -> Any:
        sealed_text = token.get(SEALED_KEY) if isinstance(token, dict) else None
        if not isinstance(sealed_text, str):
            raise KetenbrokerError("this record's texts were not kept; it cannot be replayed")
        raw = base64.b64decode(sealed_text)
        return open_sealed(data_key, case_id=case_id, label=TEXT_LABEL, sealed=raw).decode()

    return _map_texts(document, opened)


class DecisionLog(Protocol):
    def record(self, record: DecisionRecord) -> None: ...
    def for_exchange(self, exchange: str) -> list[DecisionRecord]: ...


class SqlDecisionLog:
    def __init__(self, connection: SqlConnection) -> None:
        self._db = connection
        key = (
            "INTEGER PRIMARY KEY AUTOINCREMENT"
            if connection.dialect == "sqlite"
            else "BIGSERIAL PRIMARY KEY"
        )
        with connection.schema_transaction() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS decision_log ("
                f" id {key}, exchange TEXT NOT NULL, entrypoint TEXT NOT NULL,"
                " policy_version TEXT NOT NULL, time TEXT NOT NULL, case_id TEXT,"
                " input TEXT NOT NULL, result TEXT NOT NULL)"
            )
            cur.execute(
                "CREATE INDEX IF NOT EXISTS decision_log_exchange ON decision_log (exchange)"
            )

    def record(self, record: DecisionRecord) -> None:
        try:
            # Not flushed per row: the audit entry, durable before anything is
            # fetched or disclosed, is the proof of each decision; this row is
            # its replayable detail (docs/decisions.md, "Decision log commits").
            with self._db.transaction(durable=False) as cur:
                cur.execute(
                    "INSERT INTO decision_log"
                    " (exchange, entrypoint, policy_version, time, case_id, input, result)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.exchange,
                        record.entrypoint,
                        record.policy_version,
                        record.time,
                        record.case,
                        json.dumps(record.input, sort_keys=True),
                        json.dumps(record.result, sort_keys=True),
                    ),
                )
        except Exception as e:  # any driver failure: the decision cannot be acted on
            raise AuditWriteError(f"decision log write failed: {type(e).__name__}") from e

    def for_exchange(self, exchange: str) -> list[DecisionRecord]:
        with self._db.transaction() as cur:
            cur.execute(
                "SELECT exchange, entrypoint, policy_version, time, case_id, input, result"
                " FROM decision_log WHERE exchange = ? ORDER BY id",
                (exchange,),
            )
            rows = cur.fetchall()
        return [
            DecisionRecord(
                exchange=row[0],
                entrypoint=row[1],
                policy_version=row[2],
                time=row[3],
                case=row[4],
                input=json.loads(row[5]),
                result=json.loads(row[6]),
            )
            for row in rows
        ]


def decision_record(
    *,
    exchange: str,
    entrypoint: str,
    policy_version: str,
    now: datetime,
    case_id: str | None,
    data_key: bytes | None,
    policy_input: dict[str, Any],
    result: Any,
) -> DecisionRecord:
    return DecisionRecord(
        exchange=exchange,
        entrypoint=entrypoint,
        policy_version=policy_version,
        time=rfc3339(now),
        case=case_id,
        input=mask_input(policy_input, case_id=case_id, data_key=data_key),
        result=result,
    )
