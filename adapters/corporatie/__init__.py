"""The corporatie adapter: answers `corporatie.huurrelatie` from a housing ERP export."""
