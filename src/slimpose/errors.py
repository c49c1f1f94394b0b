"""Errors that name what the user should fix (a file, a field, a value)."""


class SlimposeError(Exception):
    """Base class for errors reported to the user without a traceback by the CLI."""


class DataError(SlimposeError):
    """Bad or missing input data. The message names the file and the field."""

    def __init__(self, source: str, field: str, problem: str):
        self.source, self.field, self.problem = str(source), field, problem
        super().__init__(f"{source}: {field}: {problem}")

    def __reduce__(self):
        # DataLoader workers send exceptions to the main process by pickling them, and the
        # default pickling calls the class with the one formatted message.
        return (type(self), (self.source, self.field, self.problem))


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
