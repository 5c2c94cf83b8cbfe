"""CPU threads of a training process: how many, and fewer while other processes use the cores.

With 2 torch threads on 2 cores and one busy neighbour, every OpenMP parallel region waits
for the thread that shares its core with the neighbour, while the other spin-waits: the CPU
demo fell from ~100 to ~10-25 img/s (benchmarks/RESULTS.md, "Busy neighbour": 1 thread keeps
most of the speed). :class:`ThreadGovernor` measures, every few seconds, how much CPU the
other processes of the machine use (``/proc/stat`` over this process's CPUs minus this
process's own time; DataLoader workers count as others, since they compete for the same
cores) and sets ``torch.set_num_threads`` to the cores left, between 1 and the configured
maximum. It is on only when the thread count is automatic (``train.cpu_threads`` and
``$MAXVIT_GAN_CPU_THREADS`` unset): floating-point results depend on the thread count, so a
run that must be reproducible bit for bit sets the count explicitly.
"""

from __future__ import annotations

import os
import time

import torch


def _affinity() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        return list(range(os.cpu_count() or 1))


def _busy_seconds(cpus: list[int]) -> float | None:
    """Busy time (user, nice, system, irq, softirq, steal) of ``cpus`` since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{i}" for i in cpus}
    hz = os.sysconf("SC_CLK_TCK")
    busy = 0
    found = 0
    for line in lines:
        parts = line.split()
        if parts and parts[0] in wanted:
            v = [int(x) for x in parts[1:9]] + [0] * max(0, 8 - len(parts[1:9]))
            user, nice, system, _idle, _iowait, irq, softirq, steal = v[:8]
            busy += user + nice + system + irq + softirq + steal
            found += 1
    return busy / hz if found == len(cpus) else None


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


class ThreadGovernor:
    """``update()`` every step; returns a message when it changed the thread count."""

    # keep n threads only while the others leave n - MARGIN cores free: a neighbour using half
    # a core already makes a thread of ours straggle
    MARGIN = 0.3

    def __init__(self, max_threads: int, enabled: bool = True, interval_s: float = 5.0):
        self.max_threads = max(1, int(max_threads))
        self.cpus = _affinity()
        self.interval_s = interval_s
        self.enabled = enabled and self.max_threads > 1 and _busy_seconds(self.cpus) is not None
        self.threads = torch.get_num_threads()
        self._pending: int | None = None
        self.others = 0.0  # cores used by other processes over the last interval
        self._mark()

    def _mark(self) -> None:
        self._t = time.monotonic()
        self._busy = _busy_seconds(self.cpus) if self.enabled else None
        self._own = _own_seconds()

    def proposal(self, others: float) -> int:
        free = len(self.cpus) - others
        return max(1, min(self.max_threads, int(free + self.MARGIN)))

    def update(self) -> str | None:
        if not self.enabled or time.monotonic() - self._t < self.interval_s:
            return None
        t, busy, own = time.monotonic(), _busy_seconds(self.cpus), _own_seconds()
        if busy is None or self._busy is None:
            self._mark()
            return None
        wall = max(t - self._t, 1e-6)
        self.others = max(0.0, (busy - self._busy) - (own - self._own)) / wall
        self._mark()
        want = self.proposal(self.others)
        if want == self.threads:
            self._pending = None
            return None
        if want > self.threads and self._pending != want:  # more threads: only when seen twice in a row
            self._pending = want
            return None
        old, self.threads, self._pending = self.threads, want, None
        torch.set_num_threads(want)
        return (
            f"CPU: other processes use {self.others:.1f} of {len(self.cpus)} cores; torch threads {old} -> {want} "
            "(automatic: set train.cpu_threads to fix the count)"
        )


THREADS_ENV = "MAXVIT_GAN_CPU_THREADS"


def setup_cpu_threads(cpu_threads: int | None, local_processes: int) -> ThreadGovernor:
    """Set torch's thread count for a CPU run and return its governor (on only when the count is
    automatic). ``accelerate launch`` exports OMP_NUM_THREADS=1 unless told otherwise, so the
    automatic count is the cores over the processes of this machine, not the environment's."""
    fixed = cpu_threads or int(os.environ.get(THREADS_ENV, 0))
    torch.set_num_threads(fixed or max(1, len(_affinity()) // max(1, local_processes)))
    return ThreadGovernor(torch.get_num_threads(), enabled=not fixed)


def auto_num_workers(local_processes: int) -> int:
    """DataLoader workers per process when ``data.num_workers`` is null: the cores each process
    has, minus the one it trains on, at most 4 (8 workers on 2 cores ran at a quarter of the speed)."""
    return max(0, min(4, len(_affinity()) // max(1, local_processes) - 1))
