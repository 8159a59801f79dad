"""`aitasks api` for the benchmarks: the very same command (`graphql_app.cli api`), run in a
process whose open-files limit is raised first and which ends with the benchmark runner."""

from __future__ import annotations

from bench.process_limits import exit_with_parent, raise_open_files_limit


def main() -> None:
    raise_open_files_limit()
    exit_with_parent()
    from graphql_app.cli import main as cli

    cli(["api"], prog_name="aitasks")


if __name__ == "__main__":
    main()
