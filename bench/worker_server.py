"""`aitasks worker` for the benchmarks: the very same command (`graphql_app.cli worker`),
in a process that ends with the benchmark runner (its pool processes are in its session,
which the runner kills as a group)."""

from __future__ import annotations

from bench.process_limits import exit_with_parent


def main() -> None:
    exit_with_parent()
    from graphql_app.cli import main as cli

    cli(["worker"], prog_name="aitasks")


if __name__ == "__main__":
    main()
