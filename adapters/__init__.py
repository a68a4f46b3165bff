"""Partner adapters: each answers the broker from its partner's own system."""
