"""Stopping early and cleanly: a signal (SIGTERM from a scheduler, Ctrl-C), a lost peer, an error.

A signal sets a flag; the loop asks every rank (one tiny all-reduce per step) and, when any
rank was signalled, finishes the step, saves and exits. ``accelerate launch`` of one process
does not forward signals: the trainer asks the kernel for a SIGTERM when its launcher dies
(:func:`maxvit_gan.launch.exit_with_launcher`). A peer process that dies shows up as a
communication error in the next collective: :func:`is_peer_failure` tells it from a bug, and
the trainer ends with :class:`PeerLostError` (no collective, so no save, can succeed then).
"""

from __future__ import annotations

import signal

import torch

from maxvit_gan.launch import exit_with_launcher


class PeerLostError(RuntimeError):
    """Another process of a multi-process run died (or its connection did): this one stops too."""


class TrainingError(RuntimeError):
    """Something else failed inside the loop (a DataLoader worker killed, the data file damaged or
    replaced, ...): the in-memory state was saved first when it could be; the message is one line."""


_PEER_FAILURE_MARKS = ("connection closed by peer", "connection reset by peer", "broken pipe", "timed out",
                       "socket closed", "remote worker", "nccl error", "distbackenderror")  # fmt: skip


def is_peer_failure(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {err}".lower()
    return any(mark in text for mark in _PEER_FAILURE_MARKS)


class StopNow(KeyboardInterrupt):
    """A second stop signal while the trainer was not inside a step (an FID, a grid, a save): stop
    at once. A KeyboardInterrupt, so that no ``except Exception`` on the way swallows it."""


class StopSignal:
    """SIGTERM / SIGINT set :attr:`received`; :meth:`requested` asks every rank (collective).

    A second signal raises :class:`StopNow` at once, wherever the process is (e.g. inside an FID
    evaluation): the trainer saves when it can and stops. Inside a step (:attr:`in_step`, set by
    the trainer; a fraction of a second) it is one request with the first: a Ctrl-C in a terminal
    reaches the trainer and ``accelerate launch``, which sends it SIGTERM a moment later, and a
    step cut between its D and G updates would be saved half-done. A third signal raises even
    inside a step (one that hangs)."""

    def __init__(self):
        self.received = False
        self.count = 0
        self.in_step = False
        self._held = None  # DataLoader's SIGCHLD handler, once wrapped (hold_child_errors)
        self._child_exited = False

    def install(self) -> None:
        def handler(signum, frame):
            self.received = True
            self.count += 1
            if self.count >= 3 or (self.count == 2 and not self.in_step):
                raise StopNow(signal.Signals(signum).name)

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread (e.g. notebooks)
                return
        exit_with_launcher()  # a SIGTERM that kills `accelerate launch` reaches this process too

    def hold_child_errors(self) -> None:
        """DataLoader's SIGCHLD handler raises the moment a worker dies (the OOM killer, a launcher
        ending the process tree), wherever the main thread is: inside a step, between its D and G
        updates, and the state saved then is half a step. Wrap it (torch sets it when the first
        workers start): during a step the death is noted, and :meth:`raise_held` raises it after."""
        current = signal.getsignal(signal.SIGCHLD)
        if not callable(current) or getattr(current, "held_by", None) is self:
            return

        def handler(signum, frame):
            if self.in_step:
                self._child_exited = True
            else:
                current(signum, frame)

        handler.held_by = self
        try:
            signal.signal(signal.SIGCHLD, handler)
        except ValueError:  # not the main thread
            return
        self._held = current

    def raise_held(self) -> None:
        """After a step: raise what a worker's death during it raises (DataLoader's handler), unless
        a stop is under way (a launcher that stops the trainer ends its workers too)."""
        if self._child_exited:
            self._child_exited = False
            if not self.received and self._held is not None:
                self._held(signal.SIGCHLD, None)

    def requested(self, accelerator) -> bool:
        flag = torch.tensor([float(self.received)], device=accelerator.device)
        if accelerator.num_processes > 1:
            flag = accelerator.reduce(flag, reduction="sum")
        return flag.item() > 0
