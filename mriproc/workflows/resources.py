"""What each node asks of the scheduler: memory (GB) and processes, in one table.

Nipype's MultiProc starts a node only when its declared ``mem_gb`` and ``n_procs``
fit in what is left of ``--mem-gb`` and ``--nprocs``; the SLURM plugins turn them
into each job's ``--mem`` and ``--cpus-per-task``.  Every node runs one thread
(ITK's thread count is fixed in :mod:`mriproc.registration`, the BLAS/OpenMP ones
by ``mriproc run``), so ``n_procs`` is 1 throughout.  The memory figures are the
measured peak resident memory of the node's process (Nipype's resource monitor;
it includes the ~0.3 GB of the interpreter and libraries) at ESIMS resolution
(256 x 256 x 24), rounded up with 20-40 % headroom;
``benchmarks/bench_cohort.py`` prints the measured figures and
``benchmarks/RESULTS.md`` records them.  A 1 mm 3-D protocol has about 3.5 times
the voxels: pass a larger ``--mem-gb`` budget rather than expecting these to fit.
"""

from __future__ import annotations

from typing import Any

from nipype.pipeline import engine as pe

__all__ = ["NODE_RESOURCES", "node"]

# Interface class -> (mem_gb, n_procs).
NODE_RESOURCES: dict[str, tuple[float, int]] = {
    "BiasCorrect": (0.5, 1),  # measured 0.33
    "BrainMasks": (2.0, 1),  # measured 1.65 (template fit: SyN on the MNI152 template)
    "Coregister": (0.8, 1),  # measured 0.61
    "CoregistrationQuality": (0.7, 1),  # measured 0.52
    "TissueClasses": (1.0, 1),  # measured 0.73
    "VisitLesions": (0.9, 1),  # measured 0.68
    "VisitOutputs": (0.75, 1),  # measured 0.58
    "HalfwayRegister": (0.8, 1),  # measured 0.64
    "FollowupChanges": (0.9, 1),  # measured 0.70
    "LongitudinalOutputs": (0.75, 1),  # measured <= 0.58 (with the visit outputs)
    # Bookkeeping: run inside the scheduling process, add nothing measurable to it.
    "VisitBundle": (0.1, 1),
    "HalfwayThroughBaseline": (0.1, 1),
    "Merge": (0.1, 1),
    "IdentityInterface": (0.1, 1),
}

# Nodes that only pass file names on: run in the scheduling process, never as a job.
_BOOKKEEPING = frozenset({"Merge", "IdentityInterface", "VisitBundle", "HalfwayThroughBaseline"})


def node(interface: Any, name: str) -> pe.Node:
    """A Nipype node with the interface's declared memory and processes.

    >>> from nipype.interfaces.utility import Merge
    >>> merge = node(Merge(2), "merge")
    >>> (merge.mem_gb, merge.n_procs, merge.run_without_submitting)
    (0.1, 1, True)
    """
    kind = type(interface).__name__
    if kind not in NODE_RESOURCES:
        raise KeyError(f"{kind}: no memory and processes declared in NODE_RESOURCES")
    mem_gb, n_procs = NODE_RESOURCES[kind]
    return pe.Node(
        interface,
        name=name,
        mem_gb=mem_gb,
        n_procs=n_procs,
        run_without_submitting=kind in _BOOKKEEPING,
    )
