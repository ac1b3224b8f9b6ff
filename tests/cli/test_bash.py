"""``orgo-async bash``: the output on stdout, the remote exit code as the CLI's."""

from __future__ import annotations

from .conftest import Server, cli, launch_kept, ok


def test_bash_prints_the_output_and_exits_with_the_remote_code(server: Server) -> None:
    [computer_id] = launch_kept(server, 1, "sh")
    done = cli("bash", computer_id, "--", "sh", "-c", "echo hi; exit 3", server=server)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "hi\n"
    assert done.stderr == ""
    one = ok(cli("--emulator", "bash", "new", "--", "echo $((6*7)) | tr 4 X"))
    assert one.stdout == "X2\n"
