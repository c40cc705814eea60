"""The README's Quick start: exactly two command lines, the second one being what CI runs; the
documentation's examples (docs/extending.md) run as written."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_lines():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_has_two_lines_and_ci_runs_the_second():
    lines = _quick_start_lines()
    assert len(lines) == 2
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert ci_lines == [lines[1]]
    assert lines[0].startswith("python3 -m venv .venv && ") and "safepce" in lines[0]


def test_extension_example_runs_and_its_numbers_are_exact(capsys):
    """The documentation's 20-line example of a custom family and algorithm runs as written."""
    text = (ROOT / "docs" / "extending.md").read_text()
    section = text.split("# Adding your own task family, test-time algorithm or claim", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 40
    namespace: dict = {}
    exec(compile(code, "docs/extending.md example", "exec"), namespace)
    record, task, policy = namespace["record"], namespace["task"], namespace["Guess"](0.2).policy
    from safepce import tabular
    exact = tabular.evaluate(task, policy)
    assert (record.cost_value == exact.cost_value).all()
    assert record.summary()["violations"] == (2000 if exact.cost_value > 1.5 else 0)
    assert "final_regret" in capsys.readouterr().out


def test_property_testing_example_finds_pce_unsafe_and_safe_pce_safe(capsys):
    """The documentation's property-test example: within 100 examples hypothesis finds a task on
    which PCE deploys an infeasible policy and shrinks it to at most 8 states; the same property
    holds for Safe-PCE's theory preset over 200 runnable-family examples; in under 60 s."""
    import time

    text = (ROOT / "docs" / "extending.md").read_text()
    section = text.split("## Property-test your own algorithm", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 25
    start = time.perf_counter()
    exec(compile(code, "docs/extending.md property example", "exec"), {})
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    match = re.search(r"pce \[theory\] deployed an infeasible policy on a task with (\d+) states"
                      r".*exact cost ([0-9.e+-]+) > budget ([0-9.e+-]+)", out)
    assert match, out
    assert int(match.group(1)) <= 8 and float(match.group(2)) > float(match.group(3))
    assert elapsed < 60
