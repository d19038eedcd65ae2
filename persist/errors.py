"""Errors users can act on.

Every error a user can cause derives from :class:`PersistError`. The CLI catches it, prints
``error: <message>`` on one line and exits 2, so messages must name the offending parameter
and fit on one line.
"""


class PersistError(Exception):
    """Base class for user-facing errors (bad config, missing data, corrupt files)."""


class ConfigError(PersistError):
    """A configuration value, override or spec is invalid."""


class DataError(PersistError):
    """A dataset is missing, unreadable or inconsistent."""


class ModelError(PersistError):
    """An architecture is unknown or cannot be built as asked."""


class CheckpointError(PersistError):
    """A checkpoint or saved array is missing, corrupt or does not match the model."""


class UpstreamRunNotFound(PersistError):
    """A run id given as input does not exist or lacks the artifact the phase needs."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and ``kill`` send), raised in the main thread so that runs end KILLED and
    resumable rather than RUNNING forever. A KeyboardInterrupt, so every handler of Ctrl-C (run lifecycle,
    Optuna marking a trial FAIL) treats it the same, and ``except Exception`` never swallows it."""

