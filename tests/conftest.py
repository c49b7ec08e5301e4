"""The package's own emulator fixtures, enabled for this test suite the way users opt in."""

from importlib.metadata import entry_points

PLUGIN = "langchain_chatchat.testing.pytest_plugin"

# An install made before the plugin became opt-in still registers it through a `pytest11` entry
# point; registering the same module twice is an error, so it is only added when absent.
_installed = any(entry.value == PLUGIN for entry in entry_points(group="pytest11"))
pytest_plugins = [] if _installed else [PLUGIN]
