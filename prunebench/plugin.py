"""The plugin API: what a method file (``methods/*.py``, ``PRUNEBENCH_METHODS_PATH``) imports.

The one import path for plugin authors; the modules behind it may move between versions, this
one does not (docs/ARCHITECTURE.md, "Plugin contract").
"""

from prunebench.score.activations import group_statistics
from prunebench.score.contract import Gates, Method, ScoringContext
from prunebench.score.filters import filter_l1, random_scores
from prunebench.surgery import ChannelGroup

__all__ = ["ChannelGroup", "Gates", "Method", "ScoringContext", "filter_l1", "group_statistics", "random_scores"]
