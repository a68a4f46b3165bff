"""The zorg adapter app: `build_app` wires one care party's register into the SDK edge.

What it does: reads the partner's data file, looks at `organisatie.soort`
and picks the source for that kind of care party: a buurtbemiddeling
register (mediation dossiers) gets `BemiddelingSource` and answers
`buurtbemiddeling.terugkoppeling`; any other soort is a client register
(buurtteam, ggd) and gets `ZorgSource`, answering `<soort>.bekendheid`.

What it does not: decide which partner is which kind (the data file says
so, adapters.registry picks the zorg kind by role) or filter answers (the
broker does).

Why by the data file: the convenant's partner function and the register's
soort name the same thing, and the file is what the adapter actually
serves; a file whose shape does not match its soort fails validation at
start-up instead of answering the wrong question.
"""

from __future__ import annotations

from pathlib import Path

from adapters.sdk.partner_app import DeclaringSource, app_builder
from adapters.zorg import bemiddeling_records, records
from adapters.zorg.bemiddeling_source import BemiddelingSource
from adapters.zorg.source import ZorgSource

DATA_DIR = Path(__file__).resolve().parent / "data"


def load_source(path: Path) -> DeclaringSource:
    """The source for the care party whose register is at `path`, chosen by its soort."""
    raw = path.read_bytes()
    if records.register_soort(raw) == bemiddeling_records.BEMIDDELING_SOORT:
        return BemiddelingSource(bemiddeling_records.parse_register(raw))
    return ZorgSource(records.parse_register(raw))


build_app = app_builder(DATA_DIR, load_source)
