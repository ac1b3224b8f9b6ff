"""What the commands print and how they end: exit codes, error lines, secrets blanked."""

from __future__ import annotations

import io

import pytest

from orgo_async.cli._output import EXIT_OWN_FAILURE, columns, remote_exit_code


def test_a_remote_exit_code_passes_through_modulo_256(capsys: pytest.CaptureFixture[str]) -> None:
    assert [remote_exit_code(c, command="bash") for c in (0, 3, 124, 255, 256 + 7)] == [
        0, 3, 124, 255, 7,
    ]  # fmt: skip
    assert capsys.readouterr().err == ""


def test_no_remote_exit_code_is_an_own_failure_said_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert EXIT_OWN_FAILURE == 255
    assert remote_exit_code(None, command="terminal") == 255
    assert capsys.readouterr().err == "orgo-async terminal: no exit code came back\n"


def test_columns_follow_the_columns_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # $COLUMNS wins over any terminal, as with shutil.get_terminal_size.
    monkeypatch.setenv("COLUMNS", "33")
    assert columns(io.StringIO()) == 33
