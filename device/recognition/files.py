"""The shipped cell-feature files by name (no numpy here: the command line reads these while it
builds its parsers, before a command may set its BLAS threads)."""

CELLS_FILE = "cells_pca.npz"
# the unit-response variant for split mode: kernels centred over the orientations, each map
# pixel's 6 responses divided by their norm instead of the softmax (``unit_orientation``);
# `python -m tools.fit_cells_pca --activation unit`
UNIT_CELLS_FILE = "cells_unit.npz"

# the cell features split mode can share, and the one it shares by default
SPLIT_FEATURE_FILES = {"gabor": CELLS_FILE, "unit": UNIT_CELLS_FILE}
SPLIT_DEFAULT_FEATURE = "unit"
