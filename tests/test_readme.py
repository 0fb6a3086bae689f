"""The README's Python examples run as written and print what they promise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
EXAMPLES = re.findall(r"^```python\n(.*?)^```", README, flags=re.S | re.M)


def test_the_readme_has_its_python_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_a_readme_python_example_runs_and_prints(index: int, capsys) -> None:
    code = compile(EXAMPLES[index], f"README.md, Python example {index + 1}", "exec")
    exec(code, {"__name__": "readme_example"})
    assert capsys.readouterr().out.strip(), "the example prints nothing"
