from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from addon.emulators.runner import Emulators, start_emulators


@pytest.fixture(scope="session")
def emus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulators]:
    e = start_emulators(Path(tmp_path_factory.mktemp("emulators")))
    yield e
    e.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c
