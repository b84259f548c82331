"""prunebench: a reproducible benchmark of structured (filter/channel) pruning.

The engine runs one experiment per ``prunebench run``; see docs/ARCHITECTURE.md for the layout,
the data flow, the plugin contract and the result schema.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("prunebench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
