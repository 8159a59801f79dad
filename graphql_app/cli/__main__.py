"""`python -m graphql_app.cli`: the `aitasks` command, for a checkout without the script."""

from graphql_app.cli.commands import main

main(prog_name="aitasks")
