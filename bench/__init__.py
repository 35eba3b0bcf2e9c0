"""Benchmarks of the users service against a bare Flask + PyMySQL baseline (see run.py)."""
