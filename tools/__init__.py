"""Training, export, quantisation, data synthesis and evaluation tools (not shipped to the gate)."""
