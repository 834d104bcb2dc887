"""Logical backups (README, "Commands"): `pg_dump` ➜ gzip ➜ `BACKUP_DIR/backup_<time>.sql.gz`.

Each backup is three files: the dump, `<dump>.sha256` (sha256sum format) and `<dump>.json`
(metadata). A dump only appears under its final name once it is complete and fsynced, and
after its sidecars, so a visible dump is never half written. The dump is plain SQL made
with `--clean --if-exists`, so it restores over an existing database in one transaction.

A restore feeds psql SQL and nothing else: dump_scan.py refuses psql meta-commands (`\\!` runs a
shell command) before psql starts, and psql runs restricted besides. With BACKUP_SIGNING_KEY
set, the metadata carries an HMAC of the dump (signing.py) and restore refuses a backup
without a valid one: the checksum catches damage, the HMAC catches tampering.

files.py names, lists and prunes backups; create.py, verify.py and restore.py do what they
say; pgtools.py finds the PostgreSQL client tools and how to connect them; repository.py
holds every query.
"""
