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


class StopSignal:
    """SIGTERM / SIGINT set :attr:`received`; :meth:`requested` asks every rank (collective). A
    second signal raises KeyboardInterrupt at once, wherever the process is (e.g. inside an FID
    evaluation): the trainer then saves when it can and stops."""

    def __init__(self):
        self.received = False

    def install(self) -> None:
        def handler(signum, frame):
            if self.received:
                raise KeyboardInterrupt(f"second {signal.Signals(signum).name}")
            self.received = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread (e.g. notebooks)
                return
        exit_with_launcher()  # a SIGTERM that kills `accelerate launch` reaches this process too

    def requested(self, accelerator) -> bool:
        flag = torch.tensor([float(self.received)], device=accelerator.device)
        if accelerator.num_processes > 1:
            flag = accelerator.reduce(flag, reduction="sum")
        return flag.item() > 0
