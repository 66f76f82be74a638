"""docs/reliability.md is generated from the tests' reliability marks and must match them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _page_module():
    spec = importlib.util.spec_from_file_location("reliability_page", ROOT / "scripts" / "reliability_page.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_reliability_page_is_current_and_lists_every_marked_test():
    page = _page_module()
    cases = page.collect()
    assert len(cases) >= 10 and all(c.failure and c.response for c in cases)
    assert "tests/test_tracking_outage.py::test_server_outage_loses_and_duplicates_nothing" in {c.test for c in cases}
    assert page.main(["--check"]) == 0, "docs/reliability.md is stale: run python scripts/reliability_page.py"


def test_a_mark_without_response_is_refused(tmp_path):
    page = _page_module()
    bad = tmp_path / "test_x.py"
    bad.write_text('import pytest\n\n@pytest.mark.reliability(failure="disk full")\ndef test_x():\n    pass\n')
    page.ROOT = tmp_path
    try:
        page.cases_in(bad)
    except SystemExit as exc:
        assert "needs failure= and response=" in str(exc)
    else:
        raise AssertionError("a mark without response= was accepted")
