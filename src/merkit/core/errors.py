"""User-facing errors: the CLI prints their message (no traceback) and exits non-zero."""


class MerkitError(Exception):
    """Base class for every error merkit reports to a user as a plain message."""


class DataError(MerkitError):
    """A dataset, label file or feature table is missing, malformed or inconsistent."""


class AudioError(MerkitError):
    """An audio file cannot be decoded, is empty or too short."""


class ModelError(MerkitError):
    """A model directory is missing files, corrupt, or from an incompatible merkit version."""


class ConfigError(MerkitError):
    """A method or protocol setting is invalid."""


class MissingExtraError(MerkitError):
    """A command needs an optional part of merkit that is not installed (``merkit[EXTRA]``)."""
