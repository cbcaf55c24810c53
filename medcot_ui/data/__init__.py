"""Training data: load, validate, map columns, token stats, PHI scan, uploads, preview, the dataset report."""
