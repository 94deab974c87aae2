"""Sealed template store, audit log and attempt limiting.

store       TemplateStore (SQLite, AES-256-GCM per record; every change, its audit record and
            the integrity state in one transaction)
errors      StoreError and the typed faults (WrongKeyError, TamperedError/StoreCorrupt,
            StoreRollback, AuditChainBroken, StoreDiskFull, StoreIOError, StoreBusy)
integrity   the state record: generation + MAC over the protected state (pure math)
counter     the generation kept outside the database (FileCounter; hardware counters)
rollback    generation against counter at open; accepting a copy (audited)
migrations  schema steps; the pre-v3 whole-file seal checked once and retired
sealing     purpose keys, AES-GCM records, row tags, backup files (pure functions)
user        User (enabled, validity, weekly windows)
backup      encrypted backup / restore
audit       AuditLog (hash-chained, MAC'd, append-only), bucket_score
attempts    AttemptLimiter (per user and per terminal, doubling delays, near-threshold alarm);
            attempt_state: its MAC'd record, written in a store transaction
keys        load_device_key; key_location: where it lives (never the store's folder by
            default); subkeys: one HKDF key per purpose
private_files  owner-only folders (0700) and files (0600)
provision   the configured store opened, a new unit's key and store made
"""
