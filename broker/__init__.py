"""Ketenbroker: a secure data-exchange broker for the Dutch aanpak woonoverlast.

The broker keeps the case register, authenticates partners, asks the Rego
policy what may flow, fetches from the provider's adapter, filters, writes a
tamper-evident audit entry and only then answers.
"""

__version__ = "0.1.0"
