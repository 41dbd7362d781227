"""ITK text transform files (``#Insight Transform File V1.0``) as RAS matrices.

ITK and ANTs write linear transforms in LPS coordinates as ``y = A (x - c) + c + t``
with ``A`` and ``t`` in ``Parameters`` and the centre ``c`` in ``FixedParameters``.
The matrix returned maps RAS points of the transform's fixed space to RAS points of
its moving space, like every linear map in mriproc.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mriproc.io.atomic import atomic_write_text

__all__ = ["read_itk_affine", "write_itk_affine"]

_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_LINEAR = ("MatrixOffsetTransformBase", "AffineTransform", "Euler3DTransform")


def read_itk_affine(path: str | os.PathLike[str]) -> npt.NDArray[np.float64]:
    """4 x 4 RAS matrix of a single linear transform in an ITK text file.

    >>> import tempfile
    >>> text = ("#Insight Transform File V1.0\\n#Transform 0\\n"
    ...         "Transform: MatrixOffsetTransformBase_double_3_3\\n"
    ...         "Parameters: 1 0 0 0 1 0 0 0 1 2 3 4\\nFixedParameters: 0 0 0\\n")
    >>> with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
    ...     _ = handle.write(text)
    >>> read_itk_affine(handle.name)[:3, 3].tolist()  # LPS (2, 3, 4) is RAS (-2, -3, 4)
    [-2.0, -3.0, 4.0]
    """
    path = Path(path)
    fields: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            fields.setdefault(key.strip(), value.strip())
    kind = fields.get("Transform", "")
    if not kind.startswith(_LINEAR):
        raise ValueError(f"{path}: not a linear 3-D ITK transform ({kind or 'no Transform line'})")
    try:
        parameters = np.array(fields["Parameters"].split(), dtype=float)
        centre = np.array(fields.get("FixedParameters", "0 0 0").split(), dtype=float)
    except (KeyError, ValueError) as err:
        raise ValueError(f"{path}: unreadable Parameters/FixedParameters ({err})") from err
    if parameters.size != 12 or centre.size != 3:
        raise ValueError(f"{path}: expected 12 parameters and a 3-D centre")
    matrix = np.eye(4)
    matrix[:3, :3] = parameters[:9].reshape(3, 3)
    matrix[:3, 3] = parameters[9:] + centre - matrix[:3, :3] @ centre
    return np.asarray(_LPS @ matrix @ _LPS, dtype=np.float64)


def write_itk_affine(path: str | os.PathLike[str], fixed_to_moving: npt.ArrayLike) -> Path:
    """Write a RAS fixed-to-moving matrix as an ITK text transform (readable by ANTs, ITK-SNAP).

    >>> import tempfile
    >>> m = np.eye(4); m[:3, 3] = [1.5, -2.0, 3.0]
    >>> path = write_itk_affine(tempfile.mkdtemp() + "/x_xfm.txt", m)
    >>> bool(np.allclose(read_itk_affine(path), m))
    True
    """
    lps = _LPS @ np.asarray(fixed_to_moving, dtype=np.float64) @ _LPS
    numbers = [*lps[:3, :3].ravel(), *lps[:3, 3]]
    text = (
        "#Insight Transform File V1.0\n#Transform 0\n"
        "Transform: AffineTransform_double_3_3\n"
        f"Parameters: {' '.join(repr(float(v)) for v in numbers)}\n"
        "FixedParameters: 0 0 0\n"
    )
    atomic_write_text(Path(path), text)
    return Path(path)
