"""The case register: who takes part in which case, and the case's state.

It is deliberately not a dossier (R10): it stores the case's partners, its
state, and just enough about its subjects for a provider to find them in its
own system, encrypted under a per-case key so that destroying the key
destroys the personal data (crypto-shredding).
"""
