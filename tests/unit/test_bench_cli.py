"""``python -m bench``: help and an unknown name answer in one line instead of a traceback."""

from __future__ import annotations

import pytest

from bench.__main__ import main


def test_help_lists_the_benchmarks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m bench")
    assert "hot_path" in out
    assert "throughput" in out


def test_unknown_name_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hotpath"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "unknown benchmark hotpath" in captured.err
    assert "hot_path" in captured.err
