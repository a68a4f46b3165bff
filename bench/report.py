"""The short table `make bench` prints, and where its JSON goes.

What it does: `render_table(document)` turns a result document into plain
text: exchanges direct vs. broker per backend and concurrency with the
ratios, one durable commit, the scale-out (worker processes, throughput
against the fewest workers), policy decisions per engine, audit appends
with and without group commit, verification rates, micro costs, and the
targets with MET / MISSED / NO FIGURE. A block that was not measured
prints its status and reason in place of figures. `write_results` writes
bench/results/bench-<UTC stamp>.json and the same as latest.json.

What it does not: judge (bench.targets) or measure.

Why text this plain: it is pasted into notes and docs/performance.md and
compared by eye across runs; the JSON is for machines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.schema import is_measured

WIDTH = 100


def _ms(block: Any, key: str = "p50_ms") -> str:
    return f"{block[key]:.2f}" if _has(block, key) else "-"


def _has(block: Any, key: str) -> bool:
    return isinstance(block, dict) and isinstance(block.get(key), int | float)


def _us(block: Any, key: str) -> str:
    return f"{block[key] * 1000:,.0f}" if _has(block, key) else "-"


def _status(block: Any) -> str:
    if not isinstance(block, dict):
        return "no figure"
    return f"{block.get('status')}: {block.get('reason', '')}".strip()


def _exchange(section: dict[str, Any]) -> list[str]:
    lines = [
        "Exchanges (ms; req/s = completed / wall): direct to the politie adapter vs through broker",
        f"{'backend':<10}{'conc':>5} | {'p50':>7}{'p99':>8}{'req/s':>8} | {'p50':>7}{'p99':>8}"
        f"{'req/s':>8}{'p99/p50':>8} | {'+p50 ms':>8}{'p50 x':>7}{'req/s x':>8}",
    ]
    for name, backend in section.items():
        if not is_measured(backend):
            lines.append(f"{name:<10} {_status(backend)}")
            continue
        for row in backend.get("levels", []):
            d, b = row.get("direct", {}), row.get("broker", {})
            tail = f"{b['p99_ms'] / b['p50_ms']:.1f}" if _has(b, "p50_ms") else "-"
            flag = (
                ""
                if is_measured(d) and is_measured(b)
                else "  ! " + _status(b if not is_measured(b) else d)[:60]
            )
            lines.append(
                f"{name:<10}{row['concurrency']:>5} | {_ms(d):>7}{_ms(d, 'p99_ms'):>8}"
                f"{_rate(d):>8} | {_ms(b):>7}{_ms(b, 'p99_ms'):>8}{_rate(b):>8}{tail:>8} |"
                f" {_num(row, 'added_p50_ms', '.2f'):>7}{_num(row, 'ratio_p50', '.1f'):>7}"
                f"{_num(row, 'ratio_throughput', '.2f'):>8}{flag}"
            )
        commit, append = backend.get("durable_commit"), backend.get("store_append_one")
        lines.append(
            f"{'':<10}one durable commit p50 {_ms(commit)} ms, p99 {_ms(commit, 'p99_ms')} ms"
            f" ({commit.get('settings', '') if isinstance(commit, dict) else ''});"
            f" store append of one entry p50 {_ms(append)} ms"
        )
    return lines


def _scale_out(section: dict[str, Any]) -> list[str]:
    lines = [
        "Scale-out through the broker (ms; req/s = completed / wall; PostgreSQL + Redis):",
        "broker as N worker processes, each adapter in a process of its own",
        f"{'workers':>7}{'conc':>6} | {'p50':>8}{'p99':>9}{'req/s':>8} | {'vs fewest':>10}"
        f"{'per worker':>11}",
    ]
    scaling = {(r.get("workers"), r.get("concurrency")): r for r in section.get("scaling", [])}
    for config in section.get("configs", []):
        workers = config.get("workers", "?")
        if not is_measured(config):
            lines.append(f"{workers:>7}       {_status(config)}")
            continue
        for level in config.get("levels", []):
            b, c = level.get("broker", {}), level.get("concurrency", "?")
            ratio = scaling.get((workers, c), {})
            flag = "" if is_measured(b) else "  ! " + _status(b)[:60]
            lines.append(
                f"{workers:>7}{c:>6} | {_ms(b):>8}{_ms(b, 'p99_ms'):>9}{_rate(b):>8} |"
                f" {_times(ratio):>10}"
                f"{_num(ratio, 'efficiency', '.2f'):>11}{flag}"
            )
    return lines


def _times(row: dict[str, Any]) -> str:
    return f"{row['ratio_throughput']:.2f} x" if _has(row, "ratio_throughput") else "-"


def _rate(block: Any) -> str:
    return f"{block['throughput_per_s']:,.0f}" if _has(block, "throughput_per_s") else "-"


def _num(row: dict[str, Any], key: str, fmt: str) -> str:
    return format(row[key], fmt) if _has(row, key) else "-"


def _policy(section: dict[str, Any]) -> list[str]:
    lines = ["Policy decisions (ms)", f"{'engine':<40}{'entrypoint':<34}{'p50':>8}{'p99':>8}"]
    names = {
        "embedded": "embedded (rego-cpp in process)",
        "opa_server": "OPA server client path",
        "opa_standin": "client path vs stand-in, not OPA",
    }
    for key, title in names.items():
        block = section.get(key)
        if block is None:
            continue
        if not is_measured(block):
            lines.append(f"{title:<40}{_status(block)}")
            continue
        for entrypoint in ("ketenbroker/exchange/decision", "ketenbroker/disclosure/decision"):
            figure = block.get(entrypoint)
            short = entrypoint.removeprefix("ketenbroker/")
            if not is_measured(figure):
                lines.append(f"{title:<40}{short:<34}{_status(figure)}")
                continue
            lines.append(
                f"{title:<40}{short:<34}{_ms(figure, 'p50_ms'):>8}{_ms(figure, 'p99_ms'):>8}"
            )
    return lines


def _append(section: dict[str, Any]) -> list[str]:
    lines = [
        "Audit append (record() until durable): entries/s, commits/s, entries/commit, p50/p99 ms",
        f"{'backend':<10}{'threads':>8}  {'group commit off':<40}{'group commit on':<40}",
    ]
    for name, backend in section.items():
        if not is_measured(backend):
            lines.append(f"{name:<10} {_status(backend)}")
            continue
        rows = backend.get("rows", [])
        threads = sorted({r.get("threads") for r in rows if isinstance(r.get("threads"), int)})
        for n in threads:
            cells = []
            for on in (False, True):
                found = [r for r in rows if r.get("threads") == n and r.get("group_commit") is on]
                cells.append(_append_cell(found[0] if found else None))
            lines.append(f"{name:<10}{n:>8}  {cells[0]:<40}{cells[1]:<40}".rstrip())
    return lines


def _append_cell(row: Any) -> str:
    if not is_measured(row):
        return _status(row)[:39]
    return (
        f"{row['entries_per_s']:,.0f} / {row['commits_per_s']:,.0f} / "
        f"{row['entries_per_commit']:.1f} / {row['p50_ms']:.1f}/{row['p99_ms']:.1f}"
    )


def _verify(section: dict[str, Any]) -> list[str]:
    lines = ["Audit verification (entries/s)"]
    for name, block in section.items():
        if not is_measured(block):
            lines.append(f"{name:<10} {_status(block)}")
            continue
        parts = []
        for key, title in (
            ("log_verify", "AuditLog.verify"),
            ("log_verify_parallel", "parallel"),
            ("offline_verify", "offline (audit verify)"),
            ("offline_verify_parallel", "offline parallel"),
            ("export_write", "export write"),
        ):
            figure = block.get(key)
            if figure is None:
                continue
            parts.append(
                f"{title} {figure['entries_per_s']:,.0f}"
                if _has(figure, "entries_per_s")
                else f"{title} -"
            )
        lines.append(f"{name:<10} {block['size']:,} entries: " + ", ".join(parts))
    return lines


def _micro(section: dict[str, Any]) -> list[str]:
    lines = ["Micro costs (µs)", f"{'check':<42}{'p50':>8}{'p99':>8}"]
    for key, block in section.items():
        if not isinstance(block, dict):
            continue  # the part's own status and timing
        if not is_measured(block):
            lines.append(f"{key:<42}{_status(block)}")
            continue
        lines.append(f"{key:<42}{_us(block, 'p50_ms'):>8}{_us(block, 'p99_ms'):>8}")
    return lines


def _targets(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["Targets (issue 6)"]
    for row in rows:
        verdict = {True: "MET", False: "MISSED", None: "NO FIGURE"}[row["met"]]
        lines.append(f"  {verdict:<10}{row['name']}")
        lines.append(f"  {'':<10}  target {row['target']}; actual {row['actual']}")
    return lines


def _load(value: Any) -> str:
    return f"{value[0]:.1f}" if isinstance(value, list) and value else "?"


def render_table(document: dict[str, Any]) -> str:
    machine = document.get("machine", {})
    git = machine.get("git") or {}
    commit = (git.get("commit") or "unknown")[:10] + (" (dirty)" if git.get("dirty") else "")
    header = (
        f"Ketenbroker bench {document.get('started', '?')}  commit {commit}"
        f"  {machine.get('cpus', '?')} CPUs  Python {machine.get('python', '?')}"
        f"  wall {document.get('wall_seconds', 0):.0f} s"
        f"  load avg {_load(machine.get('loadavg_at_start'))}"
        f" -> {_load(machine.get('loadavg_at_end'))}"
    )
    blocks = [[header, "=" * min(len(header), WIDTH)]]
    sections = (
        ("exchange", _exchange),
        ("scale_out", _scale_out),
        ("policy", _policy),
        ("audit_append", _append),
        ("audit_verify", _verify),
        ("micro", _micro),
    )
    for key, render in sections:
        section = document.get(key)
        if isinstance(section, dict) and section:
            if section.get("status") not in {None, "measured"}:
                blocks.append([f"{key}: {_status(section)}"])
            else:
                blocks.append(render(section))
    blocks.append(_targets(document.get("targets", [])))
    return "\n\n".join("\n".join(lines) for lines in blocks) + "\n"


def write_results(document: dict[str, Any], folder: Path, stamp: str) -> Path:
    """bench-<stamp>.json and latest.json in `folder`; the first path."""
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    path = folder / f"bench-{stamp}.json"
    path.write_text(text)
    (folder / "latest.json").write_text(text)
    return path
