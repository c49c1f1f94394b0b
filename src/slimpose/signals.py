"""Stop signals that wait for a safe point: SIGINT (Ctrl-C) and SIGTERM (``timeout``,
``docker stop``, systemd) recorded while a block runs, so that what it writes is written
whole; the caller then stops (``slimpose infer`` after the current image) or lets the
signal take its usual effect (:meth:`StopSignals.redeliver`, training after an epoch's
files)."""

from __future__ import annotations

import signal
import threading


class StopSignals:
    """While entered, SIGINT and SIGTERM are recorded in ``received`` instead of stopping
    the process; a second signal stops at once (KeyboardInterrupt). Outside the main
    thread, where Python cannot install handlers, signals keep their usual effect."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: signal.Signals | None = None
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum)

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def redeliver(self) -> None:
        """Once exited: send the recorded signal again, now to the handlers from before
        (KeyboardInterrupt for SIGINT, termination for SIGTERM by default)."""
        if self.received is not None:
            signal.raise_signal(self.received)
