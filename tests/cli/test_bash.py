"""``orgo-async bash``: the output on stdout, the remote exit code as the CLI's."""

from __future__ import annotations

import pytest

from .conftest import Server, cli, launch_kept, ok, one_error_line


def test_bash_prints_the_output_and_exits_with_the_remote_code(server: Server) -> None:
    [computer_id] = launch_kept(server, 1, "sh")
    done = cli("bash", computer_id, "--", "sh", "-c", "echo hi; exit 3", server=server)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "hi\n"
    assert done.stderr == ""
    one = ok(cli("--emulator", "bash", "new", "--", "echo $((6*7)) | tr 4 X"))
    assert one.stdout == "X2\n"


def test_bash_errors_are_labelled_with_the_command_name(server: Server) -> None:
    done = cli("bash", "no-such-id", "--", "echo", "hi", server=server)
    line = one_error_line(done, 255)
    assert line.startswith("orgo-async bash: not found: "), line
    assert "echo" not in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["no-such-id", "--", "true"], "not found"),  # an API error
        (["abc", "--timeout", "0", "--", "true"], "--timeout"),  # a bad option
        (["abc", "--no-such-option", "--", "true"], "--no-such-option"),  # an unknown one
        ([], "COMMAND"),  # a missing argument
    ],
)
def test_bash_exits_255_for_its_own_failures(server: Server, args: list[str], needle: str) -> None:
    # The remote command's code passes through, so the CLI's own failures take 255 (like ssh).
    done = cli("bash", *args, server=server)
    assert needle in one_error_line(done, 255)
    assert done.stdout == ""
