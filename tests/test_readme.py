"""Every Python code block of README.md runs as written (those of the
documentation pages: tests/test_docs.py).

The blocks run in order, in one namespace (a block may continue the one
before, as a reader would), in a temporary directory; any exception fails.
The two set-up commands (bash blocks) are what CI itself runs.
"""

from __future__ import annotations

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"

pytestmark = pytest.mark.timeout(600)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_has_two_setup_commands():
    text = README.read_text()
    bash = re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)
    commands = [line for block in bash for line in block.splitlines() if line.strip()]
    assert len(commands) == 2, commands
    assert "python -m eprop demo" in commands[0]
    assert "pytest" in commands[1]


def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 2, "README lost its examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"README.md block {i + 1}", "exec"), namespace)
        except Exception as e:  # noqa: BLE001 - report which block failed
            pytest.fail(f"README.md python block {i + 1} failed: {type(e).__name__}: {e}\n{block}")
    out = capsys.readouterr().out
    # the first example's printed result is a learned network, not a zero output
    found = re.search(r"normalized MSE ([0-9.]+) \(predicting zero: ([0-9.]+)\)", out)
    assert found, out
    nmse, zero = map(float, found.groups())
    assert nmse < 0.05 * zero, out
