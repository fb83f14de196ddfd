"""One small module per study: read the tidy results table, compute, write a summary."""
