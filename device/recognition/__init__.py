"""Palm recognition features (the classical cell feature until the learned fusion model lands)."""
