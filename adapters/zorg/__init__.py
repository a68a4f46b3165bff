"""The zorg adapter: answers `<function>.bekendheid` (buurtteam, ggd) from a client register."""
