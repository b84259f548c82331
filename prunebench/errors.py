"""Errors that reach the user: each message names the problem and the fix."""


class PrunebenchError(Exception):
    """Base class of errors shown to the user without a traceback."""


class ConfigError(PrunebenchError):
    """A config key, value, method, model or dataset is not valid."""


class TrainingDivergedError(PrunebenchError):
    """Training produced a non-finite loss or weights; nothing of that phase is kept."""


class DataNotFoundError(PrunebenchError):
    """A dataset is not where the settings say, and cannot be downloaded."""


class DamagedFileError(PrunebenchError):
    """A file the run wrote is missing, truncated or altered (its checksum does not match)."""


class MethodError(PrunebenchError):
    """A pruning method's scores cannot be used (wrong shape, non-finite, unusable for the policy)."""
