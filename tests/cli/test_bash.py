"""``orgo-async bash``: the output on stdout, the remote exit code as the CLI's."""

from __future__ import annotations

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
    line = one_error_line(done, 4)
    assert line.startswith("orgo-async bash: not found: "), line
    assert "echo" not in line
