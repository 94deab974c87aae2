"""Stress of the template store under a running gate: ``python -m tools.stress_store admin
--commands N`` (admin commands interleaved with ``palmgate run``) and ``python -m
tools.stress_store kill --kills N`` (SIGKILLs at random moments of enrol / re-enrol / delete
/ run), ``attacks`` (the insider and power-cut cases of issue 18, items 3 and 9b, against
whatever ``device`` is importable: run it with an older checkout first on PYTHONPATH for the
"before" figures). Each prints one JSON report. Tools import device, never the reverse."""
