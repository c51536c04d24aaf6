"""Host memory habits both backends want on a CPU (plain ctypes; no torch, no jax)."""

from __future__ import annotations

import ctypes
import sys

_HOST_MEMORY_KEPT = False


def keep_freed_host_memory() -> None:
    """Keep a training step's temporaries (XLA:CPU's, torch's) in glibc's heap instead of handing them back to the OS.

    A train step allocates tens of MB of temporaries (the saved pre-activations, oneDNN's RNN
    workspaces) and frees them at the end; above glibc's mmap threshold each step would mmap them
    afresh and page-fault every page in again: about a tenth of a JAX CPU step at batch 512, and
    40 % of a torch LM step (a 30-minute torch run took 416 million minor page faults; with this
    the torch char-LM step at hidden 128, batch 128 x 100 went from 112 ms to 68 ms). Raising the
    mmap and trim thresholds (process-wide, once) keeps the pages mapped for the next step.

    The thresholds bind glibc's main heap only. A thread that allocates while the main heap is busy
    gets an arena of its own, made of 64 MB heaps that glibc unmaps whenever one empties, whatever
    the thresholds say: XLA:CPU's worker threads allocate the step's buffers there, so a JAX step
    still page-faulted ~120 MB a step (30,000 minor faults; the LM step at hidden 128, batch
    128 x 100 took ~141 ms instead of ~114). One arena (`M_ARENA_MAX` = 1) keeps every thread on the
    main heap. A thread keeps the arena it first allocated from, so this must run before the
    backends start their thread pools: `seqbatch` calls it first thing (shared/cli), and both
    backends call it again when they train on a CPU (too late for the arena, still in time for the
    thresholds). A no-op off glibc.
    """
    global _HOST_MEMORY_KEPT
    if _HOST_MEMORY_KEPT or not sys.platform.startswith("linux"):
        return
    _HOST_MEMORY_KEPT = True
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # <malloc.h>
    libc.mallopt(m_mmap_threshold, 1 << 29)
    libc.mallopt(m_trim_threshold, 1 << 30)
    libc.mallopt(m_arena_max, 1)
