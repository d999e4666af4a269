"""The exceptions pdn raises for bad input. Each carries a one-line message naming the culprit."""


class PdnError(Exception):
    """Base class of every error pdn raises on purpose."""


class DataError(PdnError, ValueError):
    """A dataset file or layout is missing, unreadable or inconsistent (names the file and the problem)."""


class ConfigError(PdnError, ValueError):
    """A configuration key or value is wrong (names the key and, for unknown keys, the close matches)."""


class CheckpointError(PdnError, ValueError):
    """A checkpoint cannot be used: missing, corrupt, or made for another architecture or class count."""
