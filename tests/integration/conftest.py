from __future__ import annotations

import pytest

from hpcmind.settings import Settings, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The settings `hpcmind services up` used (same environment, same defaults)."""
    return load_settings()
