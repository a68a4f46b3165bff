"""Hash the entry lines of one byte range of an export file: a worker's share of the check.

What it does: `hash_range` opens the export, takes the lines that start in
[start, end), and for as long as each is an entry line that passes every
check `offline.verify_export` makes of one (at most MAX_LINE_BYTES, the
RFC 8785 form of a JSON object, an integer `index` one more than the line
before's), returns its leaf hash. It stops at the first line that is
anything else and says where that line starts.

What it does not: decide anything. Whether the range's first index is the
position it must have, and everything about the lines it stopped at (the
checkpoint, a tampered line), is for the caller, which then reads on from
`stopped_at` line by line with the full checks and their messages.

Why ranges of the file rather than lines sent to workers: each worker reads
its own bytes, so the parent neither reads nor pickles the entries, and the
work per entry is spread over the cores instead of funnelled through one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from broker.audit.merkle import LEAF_PREFIX
from broker.canonical import canonical_index

SKIP_READ = 1 << 16  # bytes per read while skipping the line that crosses `start`


@dataclass(frozen=True)
class RangeLeaves:
    """The leaves of the entry lines from `first_offset`, and where the worker stopped."""

    first_offset: int  # where the first line starting in the range starts
    first_index: int | None  # that line's index, when it was an entry line
    leaves: list[bytes]
    stopped_at: int | None  # offset of the first line not handled; None: all handled


def hash_range(job: tuple[Path, int, int, int]) -> RangeLeaves:
    """The leaves of the lines starting in [start, end) of `path`; see the module docstring.

    `job` is (path, start, end, max_line_bytes), one tuple so that a pool can
    map over jobs.
    """
    path, start, end, max_line_bytes = job
    sha256 = hashlib.sha256
    leaves: list[bytes] = []
    first_index: int | None = None
    with path.open("rb") as stream:
        offset = start
        if start > 0:
            # The line holding byte start - 1 belongs to the range before;
            # ours start after its newline. Bounded: the file is finite and
            # each read makes progress or ends it.
            stream.seek(start - 1)
            while chunk := stream.readline(SKIP_READ):
                if chunk.endswith(b"\n"):
                    break
            offset = stream.tell()
        first_offset = offset
        while offset < end:
            raw = stream.readline(max_line_bytes + 1)
            if not raw:
                break
            body = raw.removesuffix(b"\n")
            if len(body) > max_line_bytes:
                return RangeLeaves(first_offset, first_index, leaves, offset)
            index = canonical_index(body)
            if index is None:
                return RangeLeaves(first_offset, first_index, leaves, offset)
            if first_index is None:
                first_index = index
            elif index != first_index + len(leaves):
                return RangeLeaves(first_offset, first_index, leaves, offset)
            leaves.append(sha256(LEAF_PREFIX + body).digest())
            offset += len(raw)
    return RangeLeaves(first_offset, first_index, leaves, None)
