"""Fixtures shared by the certificate tests: a test hierarchy, and one with a trust list."""

from __future__ import annotations

from pathlib import Path

import pytest

from hierarchy import Hierarchy, make_hierarchy, publish


@pytest.fixture
def h(tmp_path: Path) -> Hierarchy:
    return make_hierarchy(tmp_path)


@pytest.fixture
def published(h: Hierarchy) -> tuple[Hierarchy, Path]:
    return publish(h)
