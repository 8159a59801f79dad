"""Load generators, each run as `python -m bench.agents.<name>` by `bench.processes.Agent`."""
