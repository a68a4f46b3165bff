"""The zorg adapter: what care parties answer.

`<function>.bekendheid` (buurtteam, ggd) from a client register;
`buurtbemiddeling.terugkoppeling` from a mediation dossier register.
"""
