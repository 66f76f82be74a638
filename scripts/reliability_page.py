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
# Hand-written, kept under the generated table: what a resume loads, and what vouches for it.
TRUST_SECTION = """## What a resume trusts

Resuming unpickles: DeepSpeed loads its checkpoint shards with `torch.load(weights_only=False)`, and
`dssl tune --resume` lets Ray Tune unpickle `tuner.pkl`, the searcher state, trials' `params.pkl` and the
cloudpickle blobs inside its JSON state. Unpickling runs code, so nothing is unpickled that dssl did not write:

- `dssl train --resume`, worker restarts and PBT restores load a checkpoint only after its per-rank manifests
  (`dssl_manifest.rank{R}.json`, sha256 of every file; rank 0 records how many ranks wrote) verify: every file
  listed by exactly one manifest and matching it, none missing, none added.
- `dssl tune --resume` requires `run.dir/tune_state_seal.json`, the hashes of every pickle-bearing Tune file as the
  sweep's Tune wrote them, and refuses a sweep dir with any such file the seal does not vouch for (checked before
  Ray starts). CSV and event files are plain data and not sealed.
- With `DSSL_CHECKPOINT_KEY` set, manifests and seals carry an HMAC-SHA256 under it and unsigned or differently
  signed ones are refused: only a key holder can make a directory loadable. Without the key, hashes catch damage
  and stray files, but whoever can write the run dir can also rewrite a manifest.
- `encoder.pt` is a plain state dict and is always loaded with `weights_only=True` (`model.init_from`, `dssl eval`,
  `dssl data embed`, retrain probes); anything but tensors is refused unread.
- Configs never hold credentials (refused at load; they come from the environment) and everything written or
  printed is masked (`util/redaction.py`), so no resumed or submitted run depends on a masked value.
"""


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
    lines += ["", f"{len(cases)} failure cases.", "", TRUST_SECTION]
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
