"""Fault injection, subject: a shared CPU. What belongs here: the automatic torch thread count
(training.threads) and what it does when other processes use the cores."""

from __future__ import annotations

import pytest
from train_utils import fresh_trainer, run_config


def test_cpu_threads_follow_what_other_processes_use(monkeypatch):
    from maxvit_gan.training import threads as cpu

    clock = {"t": 0.0, "busy": 0.0, "own": 0.0}
    monkeypatch.setattr(cpu, "_affinity", lambda: [0, 1])
    monkeypatch.setattr(cpu, "_busy_seconds", lambda cpus: clock["busy"])
    monkeypatch.setattr(cpu, "_own_seconds", lambda: clock["own"])
    monkeypatch.setattr(cpu.time, "monotonic", lambda: clock["t"])
    set_to = []
    monkeypatch.setattr(cpu.torch, "set_num_threads", set_to.append)
    monkeypatch.setattr(cpu.torch, "get_num_threads", lambda: 2)
    gov = cpu.ThreadGovernor(2, interval_s=5)

    def run(seconds, ours, others):
        clock["t"] += seconds
        clock["own"] += seconds * ours
        clock["busy"] += seconds * (ours + others)
        return gov.update()

    assert run(5, ours=2.0, others=0.1) is None and gov.threads == 2  # quiet: both cores stay ours
    note = run(5, ours=1.3, others=1.0)  # a busy neighbour appears: one thread at once
    assert gov.threads == 1 and set_to == [1] and "other processes use 1.0 of 2 cores; torch threads 2 -> 1" in note
    assert run(5, ours=1.0, others=0.1) is None and gov.threads == 1  # gone: wait for a second look
    assert run(5, ours=1.0, others=0.1) is not None and gov.threads == 2 and set_to == [1, 2]
    assert run(1, ours=1.0, others=2.0) is None  # not before the interval
    assert not cpu.ThreadGovernor(1).enabled  # nothing to govern with one thread


def test_a_fixed_thread_count_is_left_alone(tmp_path):
    t = fresh_trainer(run_config(tmp_path, "train.kimg=0.008", "train.cpu_threads=1"))
    assert not t.threads.enabled
    t.lock.release()


def test_a_real_busy_neighbour_is_seen():
    import subprocess
    import sys
    import time

    from maxvit_gan.training.threads import ThreadGovernor

    gov = ThreadGovernor(2, interval_s=1.0)
    if not gov.enabled:
        pytest.skip("no /proc/stat")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        gov._mark()
        time.sleep(1.5)
        gov.update()
    finally:
        busy.kill()
        busy.wait()
    assert gov.others > 0.5 and gov.proposal(gov.others) == 1


@pytest.mark.parametrize("given", [None, "1"])
def test_the_start_line_says_how_many_threads_and_how_to_fix_the_count(tmp_path, monkeypatch, capsys, given):
    """The thread count changes a run's numbers (float sums in their last bits, which training
    amplifies): the run says which count it chose, whether it may change, and how to pin it."""
    import os

    import torch

    monkeypatch.delenv("MAXVIT_GAN_CPU_THREADS")  # conftest pins 1 for the whole session
    cores = len(os.sched_getaffinity(0))
    extra = [f"train.cpu_threads={given}"] if given else []
    try:
        fresh_trainer(run_config(tmp_path, "train.kimg=0.008", *extra)).train()
        line = next((s for s in capsys.readouterr().out.splitlines() if s.startswith("CPU: ") and "per process" in s), "")
    finally:
        torch.set_num_threads(1)
    if given:
        assert line == "CPU: 1 torch thread(s) per process (fixed: train.cpu_threads or $MAXVIT_GAN_CPU_THREADS)"
    else:
        why = "fewer while other processes use the cores" if cores > 1 else "the cores of this process"
        assert line.startswith(f"CPU: {cores} torch thread(s) per process (automatic: {why}; ")
        assert f"a run's numbers depend on the count: train.cpu_threads={cores} fixes it" in line
