"""Running one experiment: the round loop, its saved state, replacement of stale runs, preflight."""
