"""The gemeente adapter: answers `gemeente.maatregelen` from the case system."""
