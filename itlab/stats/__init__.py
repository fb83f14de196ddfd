"""Statistics used by the studies; each function is checked against an independent computation."""
