"""Measurement: worker processes, counters, contention, statistics, parity and the machine's description."""
