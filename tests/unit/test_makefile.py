"""Two ``make demo`` at once on a fresh clone: one builds .venv, the other waits for it and installs nothing.

The Makefile runs for real (GNU make) in a scratch folder, with ``PYTHON``
pointing at a stand-in: ``-m venv`` makes a ``.venv`` whose ``python -m pip``
records when it starts and holds until the test lets it finish; everything
else (the version check, the lock) runs on this interpreter.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FAKE_PYTHON = """#!/bin/sh
# PYTHON for the Makefile: `-m venv DIR` makes a stand-in .venv; anything else is the real interpreter.
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin"
    echo venv >> "{log}"
    cat > "$3/bin/python" <<'EOS'
#!/bin/sh
echo "pip $$ start" >> "{log}"
while [ ! -e "{release}" ]; do sleep 0.05; done
echo "pip $$ end" >> "{log}"
EOS
    chmod +x "$3/bin/python"
    exit 0
fi
exec "{real}" "$@"
"""


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_two_makes_at_once_build_one_venv_one_after_the_other(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy(REPO / "Makefile", clone / "Makefile")
    (clone / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    log, release, second_output = tmp_path / "log", tmp_path / "release", tmp_path / "second-make"
    log.touch()
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON.format(log=log, release=release, real=sys.executable))
    fake.chmod(0o755)
    command = ["make", "--no-print-directory", f"PYTHON={fake}", ".venv/.installed-demo"]

    def lines() -> list[str]:
        return log.read_text().splitlines()

    first = subprocess.Popen(command, cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second: subprocess.Popen[str] | None = None
    try:
        _wait_for(lambda: any(line.endswith(" start") for line in lines()), "the first make's pip")
        with second_output.open("w") as output:
            second = subprocess.Popen(command, cwd=clone, stdout=output, stderr=subprocess.STDOUT, text=True)
        # Either it says it waits (the lock), or it starts building .venv too (no lock).
        _wait_for(
            lambda: "waiting for the other make" in second_output.read_text() or len(lines()) > 2,
            "the second make to wait or to start",
        )
        assert [line.split()[-1] for line in lines()] == ["venv", "start"], "the second make touched .venv"
        release.touch()
        _, first_err = first.communicate(timeout=60)
        second.wait(60)
    finally:
        release.touch()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_output.read_text()
    assert [line.split()[-1] for line in lines()] == ["venv", "start", "end"], "one venv, one install, no overlap"
    assert "is up to date" in second_output.read_text()
    assert (clone / ".venv" / ".installed-demo").is_file()
