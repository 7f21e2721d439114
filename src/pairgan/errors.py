"""The errors a user can cause, one type per kind of input. Each message names the file or value,
what was found and what was expected, in one line: the CLI prints it as it is (no traceback) and
exits with status 2."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "CheckpointError",
    "WeightsError",
    "WeightsNotFound",
    "ExportError",
    "ExportMismatch",
    "HubError",
    "USER_ERRORS",
]


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message says which and what is expected."""


class DataError(ValueError):
    """A data problem: the message names the file, the offending value and what was expected."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or does not fit the networks."""


class WeightsError(RuntimeError):
    """A weights file is missing, damaged or could not be fetched; the message says what to do."""


class WeightsNotFound(WeightsError):
    """No file for a weights name in any of the places searched."""


class ExportError(ValueError):
    """An export failed or did not agree with eager PyTorch; the message says why."""


class ExportMismatch(ExportError):
    """The exported file ran but differs from eager PyTorch by more than the tolerance."""


class HubError(RuntimeError):
    """The Hugging Face Hub refused or failed an upload; the message says why and what to do."""


#: What the command line reports as one ``error:`` line instead of a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, DataError, CheckpointError, WeightsError, ExportError, HubError, FileNotFoundError,
)
