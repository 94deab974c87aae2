"""Sealed template store, audit log and attempt limiting (issue 5).

store     TemplateStore (SQLite, AES-256-GCM per record), User, StoreError/WrongKeyError/
          TamperedError
audit     AuditLog (hash-chained, MAC'd, append-only), bucket_score
attempts  AttemptLimiter (per user and per terminal, doubling delays, near-threshold alarm);
          attempt_state: its MAC'd record in the store
keys      load_device_key; key_location: where it lives (never the store's folder by
          default); subkeys: one HKDF key per purpose
private_files  owner-only folders (0700) and files (0600)
"""
