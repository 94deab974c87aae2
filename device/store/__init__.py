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
attempts    AttemptLimiter (exponential delay, near-threshold burst alarm)
keys        the device key file
"""
