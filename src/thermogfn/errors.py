"""User-facing errors: one line naming the problem and the fix."""


class ThermoGFNError(Exception):
    """An error caused by input the user can fix; the CLI prints it as one line and exits non-zero."""


class DataNotFoundError(ThermoGFNError):
    """A task's data file is missing."""


class RewardError(ThermoGFNError):
    """A reward function returned values that cannot be used (NaN, inf, negative, wrong shape)."""


class Interrupted(ThermoGFNError):
    """Training stopped on request (Ctrl-C / SIGTERM) after saving a checkpoint."""
