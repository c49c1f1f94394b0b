"""Stop signals that wait for a safe point: SIGINT (Ctrl-C) and SIGTERM (``timeout``,
``docker stop``, systemd) recorded while a block runs, so that what it writes is written
whole; the caller then stops (``slimpose infer`` after the current image) or lets the
signal take its usual effect (:meth:`StopSignals.redeliver`, training after an epoch's
files)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


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


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (see :func:`terminate_as_interrupt`); exit status 128 + SIGTERM."""

    exit_status = 128 + signal.SIGTERM


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While entered, SIGTERM (``timeout``, ``docker stop``, a cluster's pre-emption) raises
    :class:`Terminated`, a KeyboardInterrupt, so the caller's ``except KeyboardInterrupt``
    says what was kept and how to continue instead of the process vanishing without a
    word. Outside the main thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
