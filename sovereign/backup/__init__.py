"""Proven backups: Postgres (a consistent dump with the event chain's head
beside it), the Qdrant snapshots, /etc/sovereign and the phase ledger, in one
snapshot of a backup engine (restic on the lab, Kopia on the nodes), checked
by `verify` and proven by a restore drill into a scratch Postgres.

A data module: it imports only the kit, the inventory, errors, paths and
sovereign.knowledge (docs/backup.md).
"""

from sovereign.backup.settings import BackupSettings, backup_settings

__all__ = ["BackupSettings", "backup_settings"]
