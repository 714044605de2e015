"""The runtime wing's kit: what every long-running service of the cluster
builds on, and no service logic.

- `settings`: one settings object per service, built in one order: defaults
  → the typed inventory models → a file → `SOVEREIGN_<SERVICE>_…`
  environment variables;
- `sql`: the SQLite and Postgres backends and the one migrations runner over
  a package's folder of numbered SQL files (the phase ledger uses it too);
  every call bounded in time, every failure either `StoreUnavailable` (retry
  later) or `RecordRejected` (these values never fit);
- `outbox`: a durable outbox for records the store could not take, keyed by
  typed record kinds, replayed in order; what the store rejects is
  quarantined beside it, never retried in front of the rest;
- `redact`: secrets out of logs, records and error messages;
- `serve`: run an ASGI app as a service (logging, one BLAS thread, the
  listening error named).

The rule of imports (tests/unit/test_imports.py checks it): this package
imports only `sovereign.inventory`, `sovereign.errors` and `sovereign.paths`;
a service (`sovereign.router`, ...) imports this kit and those, never another
service, nor `sovereign.engine`, `checks`, `hw` or `cli`.
"""

# The services built on this kit: each is a package sovereign/<name>/ with a
# `python -m sovereign.<name>` entry point, deployed by roles/<name> on top of
# roles/sovereign_service.
SERVICES: tuple[str, ...] = ("router", "mcp")
