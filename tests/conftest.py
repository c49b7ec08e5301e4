"""Suite-wide: tests that load a real shipped model (SmolLM2, MiniLM) share one xdist worker,
so under `-n N --dist loadgroup` each model is loaded once rather than once per worker."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("real_model") is not None:
            item.add_marker(pytest.mark.xdist_group("real_model"))
