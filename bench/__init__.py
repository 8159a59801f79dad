"""Benchmarks of aitasks: `make bench`, or `python -m bench [name ...]`.

One module per benchmark in `bench/benchmarks/`, registered in `bench/registry.py`. Load
generators live in `bench/agents/` and run as processes of their own, against a real API
process (`bench/api_server.py`), a real PostgreSQL and a real Redis.
"""
