"""Fixtures shared by the test suite: a hand-written state directory and a sandbox serving it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

HANDWRITTEN_STATE = Path(__file__).parent / "fixtures" / "handwritten_state"


@pytest.fixture
def handwritten_state(tmp_path: Path) -> Path:
    """A private copy of the hand-written state directory, so writes never touch the original."""
    target = tmp_path / "state"
    shutil.copytree(HANDWRITTEN_STATE, target)
    return target


@pytest.fixture
def sandbox(handwritten_state: Path) -> Iterator[object]:
    """The three sandbox servers over `handwritten_state`; yields their `SandboxUrls`."""
    from revops_pipelines.sandbox.serve import running_sandbox

    with running_sandbox(handwritten_state, seed=7) as urls:
        yield urls
