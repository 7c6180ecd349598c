"""The acceleration stacks fff measures, one module each."""
