"""Retention by destruction (R7; seed 002 §3.4.2, §7.3-7.4; docs/adr/0004).

* `schedule`: pure: when a case's personal data is due for destruction.
* `job`: the run that destroys what is due and records it in the audit log.
* `stats`: the non-identifiable statistics that survive a destroyed case.
* `scheduler`: the thread that runs the job in `ketenbroker serve`.

Nothing is imported here, so `broker.cases.store` can use `stats` without
pulling in the job (which itself uses the case register).
"""
