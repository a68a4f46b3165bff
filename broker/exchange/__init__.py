"""The exchange pipeline: decide, fetch, filter, log, answer."""
