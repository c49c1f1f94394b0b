"""slimpose.signals: a stop signal waits for the end of the block, then takes effect."""

import os
import signal

import pytest

from slimpose.signals import StopSignals, Terminated, terminate_as_interrupt


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_the_block_is_recorded_not_acted_on(signum):
    with StopSignals() as stop:
        os.kill(os.getpid(), signum)
        finished_block = True
    assert finished_block and stop.received == signum


def test_a_second_signal_stops_at_once():
    with pytest.raises(KeyboardInterrupt):
        with StopSignals():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)


def test_the_handlers_from_before_come_back_and_redeliver_reaches_them():
    caught = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))
    try:
        with StopSignals() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
        assert caught == []
        stop.redeliver()
        assert caught == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_redeliver_after_a_quiet_block_does_nothing():
    with StopSignals() as stop:
        pass
    stop.redeliver()
    assert stop.received is None


def test_terminate_as_interrupt_turns_sigterm_into_keyboard_interrupt_then_restores():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        with terminate_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_sigterm_deferred_by_stop_signals_still_arrives_as_an_interrupt():
    with pytest.raises(Terminated):
        with terminate_as_interrupt():
            with StopSignals() as stop:
                os.kill(os.getpid(), signal.SIGTERM)
                finished_block = True
            assert finished_block
            stop.redeliver()
