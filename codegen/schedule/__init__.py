"""Scheduling: boards, the cycle/resource cost model and folding (parallelism per op)."""
