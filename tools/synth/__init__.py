"""Synthetic palm-print data generators (seed 004 candidate geometry)."""
