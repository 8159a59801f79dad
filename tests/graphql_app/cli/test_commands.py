"""The `aitasks` command as a newcomer meets it: help, version, and `aitasks keys`."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

from tests.fixtures.keys import new_key
from tests.fixtures.stack import Stack


def aitasks(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphql_app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_groups_the_commands_and_cuts_none_of_their_lines() -> None:
    shown = aitasks("-h")

    assert shown.returncode == 0
    text = shown.stdout
    assert text.index("Tasks:") < text.index("API keys:") < text.index("Server and operations:")
    tasks = text[text.index("Tasks:") : text.index("API keys:")]
    for command in ("submit", "status", "list", "cancel", "retry"):
        assert f"  {command} " in tasks
    assert "..." not in text[text.index("Tasks:") :]


def test_every_command_answers_dash_h() -> None:
    for command in ("submit", "status", "list", "cancel", "retry", "run", "inspect", "keys"):
        shown = aitasks(command, "-h")
        assert shown.returncode == 0 and "Usage: aitasks" in shown.stdout, command


def test_version_prints_the_installed_version() -> None:
    shown = aitasks("--version")

    assert shown.stdout == f"aitasks, version {version('aitasks')}\n"


def test_keys_revoke_takes_the_start_of_an_id_as_the_readme_writes_it(stack: Stack) -> None:
    new_key(stack, "revoke-by-prefix")
    listed = json.loads(aitasks("keys", "list", "--json", env=stack.env).stdout)
    key_id = next(key["id"] for key in listed if key["name"] == "revoke-by-prefix")

    revoked = aitasks("keys", "revoke", f"{key_id[:8]}...", env=stack.env)
    again = aitasks("keys", "revoke", key_id[:8], env=stack.env)

    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith(f"revoked: {key_id}")
    assert again.returncode == 1
    assert "no active key has an id starting with" in again.stderr


def test_keys_list_has_a_header_and_no_library_noise(stack: Stack) -> None:
    new_key(stack, "listed")

    listed = aitasks("keys", "list", env=stack.env)

    assert listed.returncode == 0
    assert listed.stdout.split()[:5] == ["ID", "PREFIX", "NAME", "CREATED", "STATE"]
    assert "listed" in listed.stdout
    assert listed.stderr == ""
