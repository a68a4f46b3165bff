"""The registry of adapter kinds: one per partner role (style.md §3).

What it does: `ADAPTERS` maps a kind name ("politie", "gemeente",
"corporatie", "zorg") to an `AdapterKind` that can build the adapter app
for a partner of that role from its fixture in the kind's `data/` folder.
`adapter_for_partner` picks the kind for a partner of the convenant by the
partner's role; a zorg partner's function (buurtteam, ggd) is read from its
own register, which names the kind of care party it is.

What it does not: start servers (adapters.runner) or decide which partners
exist (the convenant does). A partner the convenant does not name has no
adapter: LookupError, not a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adapters.corporatie import app as corporatie_app
from adapters.gemeente import app as gemeente_app
from adapters.politie import app as politie_app
from adapters.sdk.partner_app import BuildApp, fixture_path
from adapters.zorg import app as zorg_app
from broker.convenant import Convenant, PartnerRole


@dataclass(frozen=True)
class AdapterKind:
    name: str
    role: PartnerRole
    build_app: BuildApp
    data_dir: Path

    def fixture_path(self, partner_id: str) -> Path:
        """This partner's fixture; FileNotFoundError when the kind has none for it."""
        return fixture_path(self.data_dir, partner_id)


ADAPTERS: dict[str, AdapterKind] = {
    kind.name: kind
    for kind in (
        AdapterKind("politie", PartnerRole.politie, politie_app.build_app, politie_app.DATA_DIR),
        AdapterKind(
            "gemeente", PartnerRole.gemeente, gemeente_app.build_app, gemeente_app.DATA_DIR
        ),
        AdapterKind(
            "corporatie",
            PartnerRole.corporatie,
            corporatie_app.build_app,
            corporatie_app.DATA_DIR,
        ),
        AdapterKind("zorg", PartnerRole.zorg, zorg_app.build_app, zorg_app.DATA_DIR),
    )
}


def adapter_for_partner(convenant: Convenant, partner_id: str) -> AdapterKind:
    """The adapter kind serving `partner_id`, chosen by its role in the convenant."""
    partner = convenant.partner(partner_id)
    if partner is None:
        raise LookupError(f"expected a partner of convenant {convenant.id!r}, got {partner_id!r}")
    for kind in ADAPTERS.values():
        if kind.role is partner.role:
            return kind
    raise LookupError(f"expected an adapter kind for role {partner.role.value!r}, found none")
