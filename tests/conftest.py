"""The package's own emulator fixtures, enabled for this test suite the way users opt in; and
tests that load a real shipped model (SmolLM2, MiniLM) share one xdist worker, so under
`-n N --dist loadgroup` each model is loaded once rather than once per worker."""

from importlib.metadata import entry_points

import pytest

PLUGIN = "langchain_chatchat.testing.pytest_plugin"

# An install made before the plugin became opt-in still registers it through a `pytest11` entry
# point; registering the same module twice is an error, so it is only added when absent.
_installed = any(entry.value == PLUGIN for entry in entry_points(group="pytest11"))
pytest_plugins = [] if _installed else [PLUGIN]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("real_model") is not None:
            item.add_marker(pytest.mark.xdist_group("real_model"))
