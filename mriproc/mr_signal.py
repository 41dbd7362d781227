"""MR signal: literature 1.5 T relaxation values and spin-echo / inversion-recovery equations.

Signals are relative (proton density 1 = pure water); the acquisition scales them.
Relaxation times in ms.  Sources for the 1.5 T values: Gold et al., AJR 2004;183:343
(WM, GM, CSF, fat, muscle, blood); lesion values from quantitative MS studies
(acute lesions long T1/T2, chronic lesions intermediate, black holes T1 > 1500 ms).
Gadolinium shortens T1 as 1/T1 = 1/T1_0 + r1 * C, with r1 = 4.5 /mM/s for Gd-DTPA
at 1.5 T (Rohrer et al., Invest Radiol 2005;40:715).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "GD_RELAXIVITY_PER_MM_PER_MS",
    "SEQUENCES",
    "TISSUES",
    "Sequence",
    "Tissue",
    "signal",
]

FloatArray = npt.NDArray[np.float32]

GD_RELAXIVITY_PER_MM_PER_MS = 4.5e-3  # r1 of Gd-DTPA at 1.5 T: 4.5 /mM/s


@dataclass(frozen=True)
class Tissue:
    """Proton density (water = 1) and relaxation times (ms) of one tissue at 1.5 T."""

    pd: float
    t1_ms: float
    t2_ms: float


TISSUES: dict[str, Tissue] = {
    "WM": Tissue(0.69, 650.0, 75.0),
    "GM": Tissue(0.80, 1050.0, 95.0),
    "CSF": Tissue(1.00, 4000.0, 1800.0),
    "fat": Tissue(0.90, 260.0, 70.0),
    "muscle": Tissue(0.75, 900.0, 45.0),
    "bone": Tissue(0.05, 300.0, 1.0),
    # Slow venous blood in sinuses and veins; arterial flow voids are not modelled.
    "blood": Tissue(0.80, 1300.0, 150.0),
    "choroid_plexus": Tissue(0.80, 1000.0, 110.0),
    # MS lesions of different ages.
    "lesion_acute": Tissue(0.88, 1250.0, 170.0),
    "lesion_chronic": Tissue(0.84, 1050.0, 130.0),
    "black_hole": Tissue(0.92, 2000.0, 260.0),
}


@dataclass(frozen=True)
class Sequence:
    """A 2-D or 3-D acquisition: spin echo, or inversion recovery when ``ti_ms`` is set."""

    tr_ms: float
    te_ms: float
    ti_ms: float | None = None


# ESIMS-era 1.5 T protocol: dual-echo PD/T2 SE, T1 SE before/after Gd; FLAIR when asked.
SEQUENCES: dict[str, Sequence] = {
    "PDw": Sequence(tr_ms=2500.0, te_ms=20.0),
    "T2w": Sequence(tr_ms=2500.0, te_ms=80.0),
    "T1w": Sequence(tr_ms=550.0, te_ms=15.0),
    "FLAIR": Sequence(tr_ms=9000.0, te_ms=120.0, ti_ms=2500.0),
}


def signal(
    sequence: Sequence,
    pd: float | FloatArray,
    t1_ms: float | FloatArray,
    t2_ms: float | FloatArray,
    gd_mm: float | FloatArray = 0.0,
) -> FloatArray:
    """Relative signal of a tissue (element-wise for arrays).

    >>> wm, gm, csf = (TISSUES[t] for t in ("WM", "GM", "CSF"))
    >>> t2 = SEQUENCES["T2w"]
    >>> bool(signal(t2, csf.pd, csf.t1_ms, csf.t2_ms) > signal(t2, wm.pd, wm.t1_ms, wm.t2_ms))
    True
    """
    rate = 1.0 / np.asarray(t1_ms, dtype=np.float32) + GD_RELAXIVITY_PER_MM_PER_MS * np.asarray(
        gd_mm, dtype=np.float32
    )
    recovery = np.exp(-sequence.tr_ms * rate)
    if sequence.ti_ms is None:
        longitudinal = 1.0 - recovery
    else:
        longitudinal = np.abs(1.0 - 2.0 * np.exp(-sequence.ti_ms * rate) + recovery)
    decay = np.exp(-sequence.te_ms / np.asarray(t2_ms, dtype=np.float32))
    return np.asarray(np.asarray(pd, dtype=np.float32) * longitudinal * decay, dtype=np.float32)
