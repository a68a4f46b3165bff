"""The adapter SDK: what every partner adapter shares.

`create_adapter_app` (the HTTP edge), `FieldDeclaration` (what an adapter can
answer, per data category), `PartnerSource` (the interface to the partner's
own system), `BrokerClient` (the partner calling the broker) and the
matching helpers. Partner-specific code lives in `adapters/<kind>/`.
"""

from adapters.sdk.app import ReplayCache, create_adapter_app
from adapters.sdk.client import BrokerClient, TokenRequestError
from adapters.sdk.declarations import (
    Declarations,
    FieldDeclaration,
    UndeclaredAnswerError,
    build_answer,
)
from adapters.sdk.matching import in_period, is_subject, normalise_name, overlaps_period
from adapters.sdk.source import PartnerSource

__all__ = [
    "BrokerClient",
    "Declarations",
    "FieldDeclaration",
    "PartnerSource",
    "ReplayCache",
    "TokenRequestError",
    "UndeclaredAnswerError",
    "build_answer",
    "create_adapter_app",
    "in_period",
    "is_subject",
    "normalise_name",
    "overlaps_period",
]
