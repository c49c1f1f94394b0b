"""Errors that name what the user should fix (a file, a field, a value)."""


class SlimposeError(Exception):
    """Base class for errors reported to the user without a traceback by the CLI."""


class DataError(SlimposeError):
    """Bad or missing input data. The message names the file and the field."""

    def __init__(self, source: str, field: str | None = None, problem: str | None = None):
        if field is None and problem is None:
            # A DataLoader worker's exception reaches the main process as
            # type(text of its traceback), whose last line is the worker's message.
            lines = str(source).strip().splitlines() or [""]
            message = lines[-1].split(f"{type(self).__name__}: ", 1)[-1]
            self.source, self.field, self.problem = message, "", ""
            super().__init__(message)
            return
        self.source, self.field, self.problem = str(source), field, problem
        super().__init__(f"{source}: {field}: {problem}")


class ConfigError(SlimposeError):
    """A config file or a --set override that cannot be used."""


class CheckpointError(SlimposeError):
    """A checkpoint that does not fit the model or cannot be read."""


class OutputError(SlimposeError):
    """An output file could not be written (a full disk, no permission); what was there
    before is unchanged."""


class TrainingDiverged(SlimposeError):
    """The loss, the weights or the predictions left any plausible range; training
    stopped before writing a checkpoint, so the last good one is kept."""
