"""A Ctrl-C during a start or a stop is held until the block ends, then delivered: never lost, never half-way."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from secretswitch.embedded_stack.signals import signals_deferred


def _interrupted_block(steps: list[str]) -> None:
    with signals_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        steps.append("the block ran to its end")


def _interrupted_inner_block(steps: list[str]) -> None:
    with signals_deferred():
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
        steps.append("after the inner block")


def test_a_signal_inside_the_block_is_delivered_when_it_ends() -> None:
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        _interrupted_block(steps)
    assert steps == ["the block ran to its end"]


def test_the_previous_handlers_are_back_afterwards() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with signals_deferred(), signals_deferred():
        pass
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_nested_blocks_deliver_once_at_the_outer_end() -> None:
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        _interrupted_inner_block(steps)
    assert steps == ["after the inner block"]


def test_outside_the_main_thread_it_changes_nothing() -> None:
    seen: list[object] = []

    def body() -> None:
        with signals_deferred():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGINT)]
