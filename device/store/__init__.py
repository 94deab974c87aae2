"""Sealed template store, audit log and attempt limiting (issue 5).

store     TemplateStore (SQLite, AES-256-GCM per record), User, StoreError/WrongKeyError/
          TamperedError
audit     AuditLog (hash-chained, MAC'd, append-only), bucket_score
attempts  AttemptLimiter (exponential delay, near-threshold burst alarm)
"""
