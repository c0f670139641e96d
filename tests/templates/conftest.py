"""Options for the template tests: `pytest tests/templates --update-golden` rewrites the golden files."""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/templates/*.txt from the current templates (then review the diff)")


@pytest.fixture(scope="session")
def update_golden(request) -> bool:
    # default: this conftest is not an initial one when pytest runs from the repository root
    return bool(request.config.getoption("--update-golden", default=False))
