"""Write docs/reliability.md from the tests: every failure a test injects and what the system does about it.

A test declares both with `@pytest.mark.reliability(failure="...", response="...")`; this script reads the marks
from the test sources (no test is imported or run), so the page lists exactly what the suite exercises.

    python scripts/reliability_page.py            # rewrite docs/reliability.md
    python scripts/reliability_page.py --check    # exit 1 if the page is out of date (CI)
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reliability.md"
COMMAND = "python scripts/reliability_page.py"


@dataclass
class FailureCase:
    failure: str
    response: str
    test: str  # tests/FILE.py::NAME
    slow: bool


def _mark_name(node: ast.expr) -> str | None:
    """`pytest.mark.NAME(...)` or `pytest.mark.NAME` → NAME."""
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute) and target.value.attr == "mark":
        return target.attr
    return None


def cases_in(path: Path) -> list[FailureCase]:
    """The reliability marks of one test file, in source order; a mark without both keywords is an error."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.FunctionDef):
            continue
        marks = {_mark_name(d): d for d in node.decorator_list}
        mark = marks.get("reliability")
        if mark is None:
            continue
        keywords = {k.arg: ast.literal_eval(k.value) for k in getattr(mark, "keywords", [])}
        if not {"failure", "response"} <= keywords.keys():
            raise SystemExit(f"{path}:{node.lineno}: reliability mark of {node.name} needs failure= and response=")
        found.append(FailureCase(keywords["failure"], keywords["response"],
                                 f"{path.relative_to(ROOT).as_posix()}::{node.name}", "slow" in marks))
    return found


def collect(tests_dir: Path = ROOT / "tests") -> list[FailureCase]:
    return [case for path in sorted(tests_dir.glob("test_*.py")) for case in cases_in(path)]


def render(cases: list[FailureCase]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "# Reliability: failures tried and what the system does",
        "",
        f"Generated from the test suite by `{COMMAND}`; do not edit by hand. Each row is a test that injects the",
        "failure into real components (Ray, DeepSpeed checkpoints, an MLflow server, real files) and asserts the",
        "behaviour in the middle column; `make test` runs all of them (slow ones are end-to-end).",
        "",
        "| Failure injected | What the system does | Test |",
        "|---|---|---|",
    ]
    for case in cases:
        name = f"`{case.test}`" + (" (slow)" if case.slow else "")
        lines.append(f"| {cell(case.failure)} | {cell(case.response)} | {name} |")
    lines += ["", f"{len(cases)} failure cases.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the page is up to date")
    ns = parser.parse_args(argv)
    cases = collect()
    page = render(cases)
    if ns.check:
        current = PAGE.read_text() if PAGE.exists() else ""
        if current != page:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(ROOT)} ({len(cases)} failure cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
