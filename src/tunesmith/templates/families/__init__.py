"""Template families, one module per group of related markups (builtin.py registers them)."""
