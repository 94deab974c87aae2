"""Stress of the template store under a running gate: ``python -m tools.stress_store admin
--commands N`` (admin commands interleaved with ``palmgate run``) and ``python -m
tools.stress_store kill --kills N`` (SIGKILLs at random moments of enrol / re-enrol / delete
/ run). Each prints one JSON report. Tools import device, never the reverse."""
