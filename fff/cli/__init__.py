"""Command-line entry points: fff-profile (and, later, fff-study and fff-report)."""
