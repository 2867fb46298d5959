"""Datasets: the one in-memory form, the ``.npz`` format, loaders and splits.

(Skeleton: the in-memory :class:`Dataset` contract. Loading/saving, the DeLaN
reference loader and splits are filled in by the datasets work.)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .systems.base import SystemInfo

OPTIONAL_FIELDS = ("tau", "mass_matrix", "inertial", "coriolis", "gravity", "energy", "p", "pdot")


@dataclasses.dataclass
class Dataset:
    """Samples of one system's motion, grouped into trajectories.

    Arrays (N samples, n joints): ``t (N,)`` time within its trajectory; ``q, qd, qdd
    (N, n)``; ``trajectory (N,)`` integer ids; optional ``tau (N, n)``, ground-truth
    ``mass_matrix (N, n, n)``, ``inertial = M qdd``, ``coriolis``, ``gravity (N, n)``,
    ``energy (N,)``, momentum ``p`` and its rate ``pdot (N, n)``. ``labels`` names
    each trajectory id (``labels[id]``), e.g. the character drawn. ``metadata`` holds
    the system info (``metadata["system"]``, a :meth:`SystemInfo.to_json` dict), ``dt``
    and the generator settings.
    """

    t: np.ndarray
    q: np.ndarray
    qd: np.ndarray
    qdd: np.ndarray
    trajectory: np.ndarray
    tau: np.ndarray | None = None
    mass_matrix: np.ndarray | None = None
    inertial: np.ndarray | None = None
    coriolis: np.ndarray | None = None
    gravity: np.ndarray | None = None
    energy: np.ndarray | None = None
    p: np.ndarray | None = None
    pdot: np.ndarray | None = None
    labels: list[str] | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def dof(self) -> int:
        return int(self.q.shape[-1])

    @property
    def info(self) -> SystemInfo:
        return SystemInfo.from_json(self.metadata["system"])

    def __len__(self) -> int:
        return int(self.q.shape[0])


def check_writable(path, force: bool = False) -> None:
    """Raise :class:`FileExistsLagraxError` if ``path`` exists and ``force`` is false."""
    from pathlib import Path

    from .errors import FileExistsLagraxError

    path = Path(path)
    if path.exists() and not force:
        raise FileExistsLagraxError(f"{path} exists; refusing to overwrite it (use --force / force=True)")
