"""Loopback-only Ray for every module here: Ray reads this variable when it is first imported
(it then takes 127.0.0.1 as the node address instead of the machine's own), so it is set
before any test module of this directory imports `ray`. Each module checks the address after
starting its cluster."""

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
