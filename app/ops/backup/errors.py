"""The one error every backup step raises."""


class BackupError(Exception):
    """A backup, restore or check that must stop; the message says why and what to do."""
