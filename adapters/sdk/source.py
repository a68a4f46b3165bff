"""The one interface between the adapter SDK and a partner's own system.

A `PartnerSource` turns a verified query into an answer from whatever the
partner runs (a police register export, a housing ERP, a client register).
It is handed only queries whose call token, body hash and replay check have
passed, for exchange types the adapter declared; it does no authentication.
"""

from __future__ import annotations

from typing import Protocol

from broker.adapter_protocol import AdapterAnswer, AdapterQuery


class PartnerSource(Protocol):
    def answer(self, query: AdapterQuery) -> AdapterAnswer:
        """Everything the partner's system holds on the subject for this question."""
        ...
