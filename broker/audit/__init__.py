"""The tamper-evident audit log (contract.md, "Audit log").

What it does: every exchange and every refused attempt becomes an entry in
an append-only store; the entries are the leaves of an RFC 9162 Merkle tree
whose head the broker signs (a checkpoint). Anyone holding the entries and a
checkpoint can recompute the root; anyone holding two checkpoints can ask
for a consistency proof that the later log extends the earlier one.

The parts, each with one job:

* `merkle`: the tree and its proofs, pure functions (RFC 9162 §2.1).
* `checkpoint`: the signed tree head and its documented byte string.
* `store`: the `AuditStore` protocol; `sqlite_store` and `postgres_store`
  implement it.
* `log`: `AuditLog`, which ties a store, the tree and the broker's key
  together and fails closed (`AuditWriteError`) when an entry cannot be
  made durable.
* `entries`: the shapes of the entries themselves.

What it does not: decide who may read the log; that is the API edge's job.
"""

from broker.audit.checkpoint import (
    Checkpoint,
    CheckpointFormatError,
    CheckpointSignatureError,
    checkpoint_message,
    sign_checkpoint,
    verify_checkpoint,
)
from broker.audit.log import AuditLog, Receipt, VerificationReport
from broker.audit.merkle import (
    ConsistencyProofError,
    InclusionProofError,
    MerkleAccumulator,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)
from broker.audit.postgres_store import PostgresAuditStore
from broker.audit.sqlite_store import SqliteAuditStore
from broker.audit.store import (
    AuditQuery,
    AuditReadError,
    AuditStore,
    CorruptEntryError,
    StoredEntry,
)

__all__ = [
    "AuditLog",
    "AuditQuery",
    "AuditReadError",
    "AuditStore",
    "Checkpoint",
    "CheckpointFormatError",
    "CheckpointSignatureError",
    "ConsistencyProofError",
    "CorruptEntryError",
    "InclusionProofError",
    "MerkleAccumulator",
    "PostgresAuditStore",
    "Receipt",
    "SqliteAuditStore",
    "StoredEntry",
    "VerificationReport",
    "checkpoint_message",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_leaves",
    "sign_checkpoint",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
]
