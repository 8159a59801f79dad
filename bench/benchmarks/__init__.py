"""One module per benchmark; `bench.registry` lists them in the order they run."""
