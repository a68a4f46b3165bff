"""Command groups of `ketenbroker`, one module each; `broker/cli.py` registers them.

A module exposes `register(commands)` taking the top-level subparsers
object; each subcommand sets `handler(args, settings) -> int`.
"""
