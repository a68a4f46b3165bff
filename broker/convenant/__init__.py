"""The convenant as data: the signed agreement, validated on load."""

from broker.convenant.load import load_convenant, parse_convenant
from broker.convenant.model import (
    Auditor,
    Convenant,
    ExchangeType,
    LegalBasis,
    Partner,
    PartnerRole,
)

__all__ = [
    "Auditor",
    "Convenant",
    "ExchangeType",
    "LegalBasis",
    "Partner",
    "PartnerRole",
    "load_convenant",
    "parse_convenant",
]
