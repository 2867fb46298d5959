"""Data-parallel training over devices and processes, with :mod:`jax.sharding`.

A :class:`DataParallel` holds a 1-D :class:`~jax.sharding.Mesh` over devices (every
process's, in a multi-process run) with the axis :data:`AXIS` (``"data"``) and two
:class:`~jax.sharding.NamedSharding`\\ s: ``replicated`` (every device holds the whole
array) and ``rows`` (the leading axis split over ``"data"``). :func:`lagrax.training.train`
with ``devices=N`` uses it as follows:

* the training data, the validation batch and the train state (parameters, optimiser
  states, step, key) are placed ``replicated`` (:meth:`DataParallel.place`);
* inside the compiled epoch, each minibatch (and the L-BFGS / validation full batch) is
  constrained to ``rows`` (:func:`constrain_rows`, ``jax.lax.with_sharding_constraint``):
  XLA's SPMD partitioner then computes each device's share of the per-sample losses and
  gradients and inserts the all-reduce of the mean itself (none is written by hand), so
  the parameters stay replicated and every device applies the same update;
* the returned model is brought back to ordinary single-device arrays (:meth:`DataParallel.local`).

The result equals single-device training up to the order of floating-point summation
(the mean over the batch is a sum of per-device partial sums).

**Batch sizes that are not multiples of the device count** are allowed. Found by
experiment (JAX 0.10.2, 8 CPU devices): ``jax.device_put`` or
``jax.make_array_from_callback`` of a 10-row array with ``rows`` raises
``IndivisibleError``, but ``with_sharding_constraint`` inside ``jit`` accepts it (the
partitioner gives the last devices fewer rows) and the result is unchanged. This is why
only batches are sharded, inside ``jit``, and the data is placed replicated: nothing
ever needs padding. The cost is that every device holds the whole training set.

**Several processes** (one per host, or per GPU): call :func:`initialize_distributed`
before anything else touches JAX (``lagrax train`` does, from the ``LAGRAX_*`` or
``JAX_*`` environment variables below); ``jax.devices()`` then lists every process's
devices and the mesh spans them all. Every process loads the same data and builds the
same initial model (same seed); only process 0 writes files (:func:`is_writer`).
On CPUs the collectives between processes go through Gloo
(``jax_cpu_collectives_implementation``, JAX 0.10's default, set explicitly here).

Environment variables read by :func:`initialize_distributed` (the ``LAGRAX_`` name first):

=========================  ==========================  ==============================
``LAGRAX_COORDINATOR``     ``JAX_COORDINATOR_ADDRESS``  ``host:port`` of process 0
``LAGRAX_NUM_PROCESSES``   ``JAX_NUM_PROCESSES``        how many processes in all
``LAGRAX_PROCESS_ID``      ``JAX_PROCESS_ID``           this process, ``0 ...``
=========================  ==========================  ==============================
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lagrax.training.config import ConfigError

AXIS = "data"
ENV = {
    "coordinator_address": ("LAGRAX_COORDINATOR", "JAX_COORDINATOR_ADDRESS"),
    "num_processes": ("LAGRAX_NUM_PROCESSES", "JAX_NUM_PROCESSES"),
    "process_id": ("LAGRAX_PROCESS_ID", "JAX_PROCESS_ID"),
}
FORCE_HINT = "XLA_FLAGS=--xla_force_host_platform_device_count=N"


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """A 1-D device mesh with axis :data:`AXIS` and its two shardings (see the module docstring)."""

    mesh: Mesh

    @classmethod
    def over(cls, devices: int | str | None = None) -> DataParallel:
        """The mesh over the first ``devices`` of ``jax.devices()`` (``None`` or ``"all"``: all).

        In a multi-process run the mesh must span every process's devices, so ``devices``
        must then be ``jax.device_count()`` (or ``None`` / ``"all"``).
        """
        n = device_count(devices)
        return cls(Mesh(np.array(jax.devices()[:n]), (AXIS,)))

    @property
    def size(self) -> int:
        """How many devices the batch is split over."""
        return self.mesh.size

    @property
    def replicated(self) -> NamedSharding:
        """Every device holds the whole array (parameters, optimiser state, the data)."""
        return NamedSharding(self.mesh, PartitionSpec())

    @property
    def rows(self) -> NamedSharding:
        """The leading axis (samples, windows) split over the devices."""
        return NamedSharding(self.mesh, PartitionSpec(AXIS))

    def place(self, tree: Any) -> Any:
        """Every array leaf of ``tree`` (NumPy or JAX) replicated on the mesh; other leaves as they are.

        Single-process: ``jax.device_put``. Multi-process: ``jax.make_array_from_callback``
        from this process's copy (every process must pass the same values).
        """
        sharding = self.replicated

        def put(x):
            if not isinstance(x, (jax.Array, np.ndarray)):
                return x
            if jax.process_count() == 1:
                return jax.device_put(x, sharding)
            host = np.asarray(x)
            return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

        return jax.tree_util.tree_map(put, tree)

    def local(self, tree: Any) -> Any:
        """``tree`` with its replicated mesh arrays as ordinary arrays on this process's
        first device (what evaluation, saving and plotting expect)."""
        return jax.tree_util.tree_map(to_local, tree)


def to_local(x: Any) -> Any:
    """A replicated (multi-device, possibly multi-process) array as a single-device array;
    anything else as it is."""
    if not isinstance(x, jax.Array) or len(x.sharding.device_set) == 1:
        return x
    if x.sharding.is_fully_replicated:
        return x.addressable_data(0)
    return jax.numpy.asarray(np.asarray(x))


def device_count(devices: int | str | None) -> int:
    """The number of devices ``devices`` asks for, checked against ``jax.device_count()``.

    ``None`` or ``"all"``: every device; an int (or its text) between 1 and the count.
    Raises :class:`~lagrax.training.config.ConfigError` otherwise, naming both numbers.
    """
    available = jax.device_count()
    if devices is None or (isinstance(devices, str) and devices.strip().lower() == "all"):
        return available
    try:
        n = int(devices)
    except (TypeError, ValueError):
        raise ConfigError(f"devices must be a positive integer or 'all', got {devices!r}") from None
    if n < 1:
        raise ConfigError(f"devices must be at least 1, got {n}")
    if n > available:
        raise ConfigError(
            f"devices = {n} but JAX sees only {available} device(s) ({jax.default_backend()}); "
            f"on a CPU, more devices can be simulated with {FORCE_HINT} set before Python starts"
        )
    if jax.process_count() > 1 and n != available:
        raise ConfigError(
            f"devices = {n}, but a run over {jax.process_count()} processes uses all "
            f"{available} devices: give devices = 'all' (or {available})"
        )
    return n


def data_parallel(devices: int | str | None) -> DataParallel | None:
    """The :class:`DataParallel` that :func:`lagrax.training.train` uses for ``devices``, or
    ``None`` for the plain single-device path.

    ``None`` means one device in a single-process run (the plain path), and every device
    in a multi-process run (after :func:`initialize_distributed`). ``1`` is the plain path.
    """
    if devices is None and jax.process_count() == 1:
        return None
    n = device_count(devices)
    return DataParallel.over(n) if n > 1 or jax.process_count() > 1 else None


def resolve_devices(devices: int | str | None) -> int | None:
    """What ``lagrax train --devices`` passes to ``train``: first :func:`initialize_distributed`
    (from the environment; nothing without a coordinator), then the checked count of
    :func:`device_count` (every device in a multi-process run), or ``None`` (one device)."""
    distributed = initialize_distributed()
    return device_count(devices) if devices is not None or distributed else None


def constrain_rows(tree: Any, sharding: NamedSharding | None) -> Any:
    """Inside ``jit``: every array leaf of ``tree`` with a leading axis constrained to
    ``sharding`` (e.g. :attr:`DataParallel.rows`); ``tree`` unchanged for ``None``.

    A leading axis that is not a multiple of the device count is allowed here (not in
    ``jax.device_put``): the last devices get fewer rows.
    """
    if sharding is None:
        return tree

    def constrain(x):
        if isinstance(x, jax.Array) and x.ndim >= 1:
            return jax.lax.with_sharding_constraint(x, sharding)
        return x

    return jax.tree_util.tree_map(constrain, tree)


def is_writer() -> bool:
    """Whether this process writes the run's files: process 0 (always, in a single-process run)."""
    return jax.process_index() == 0


# what a run can stop for (lagrax.training.trainer), in the order agree_on_stop encodes them
STOP_REASONS = (None, "completed", "early_stopping", "max_seconds", "target_val_loss", "callback")


def agree_on_stop(reason: str | None) -> str | None:
    """Process 0's decision to stop (one of :data:`STOP_REASONS`), on every process of a
    multi-process run, so that no process waits in a collective for one that stopped on its
    own clock (``max_seconds``) or callback; ``reason`` itself in a single process."""
    if jax.process_count() == 1:
        return reason
    from jax.experimental import multihost_utils

    code = multihost_utils.broadcast_one_to_all(np.int32(STOP_REASONS.index(reason)))
    return STOP_REASONS[int(code)]


def _env(name: str, environ: Mapping[str, str]) -> str | None:
    for var in ENV[name]:
        if environ.get(var):
            return environ[var]
    return None


def distributed_settings(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict | None:
    """``jax.distributed.initialize``'s three arguments from the arguments, else the
    environment (:data:`ENV`); ``None`` when no coordinator is given (a single process)."""
    environ = os.environ if environ is None else environ
    address = coordinator_address or _env("coordinator_address", environ)
    if address is None:
        return None
    settings: dict[str, str | int] = {"coordinator_address": address}
    for name, value in (("num_processes", num_processes), ("process_id", process_id)):
        text = value if value is not None else _env(name, environ)
        if text is None:
            raise ConfigError(
                f"a multi-process run with coordinator {address} needs {name}: set {' or '.join(ENV[name])}"
            )
        try:
            settings[name] = int(text)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {text!r}") from None
    return settings


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    cpu_collectives: str | None = "gloo",
    initialization_timeout: int = 300,
) -> bool:
    """Join a multi-process run: a thin wrapper over ``jax.distributed.initialize``.

    Arguments left out come from the environment (:data:`ENV`: ``LAGRAX_COORDINATOR`` or
    ``JAX_COORDINATOR_ADDRESS``, ``LAGRAX_NUM_PROCESSES``, ``LAGRAX_PROCESS_ID``). Without
    a coordinator address this does nothing and returns ``False`` (a single-process run);
    otherwise it returns ``True`` once every process has joined. Call it before any JAX
    computation. ``cpu_collectives`` sets ``jax_cpu_collectives_implementation`` (Gloo:
    what CPU devices of several processes need for their all-reduce; ``None`` keeps JAX's
    setting). ``initialization_timeout``: seconds to wait for the other processes.
    """
    settings = distributed_settings(coordinator_address, num_processes, process_id)
    if settings is None:
        return False
    if cpu_collectives is not None:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    try:
        jax.distributed.initialize(**settings, initialization_timeout=initialization_timeout)
    except RuntimeError as e:
        raise ConfigError(
            f"jax.distributed.initialize({settings}) failed: {e}. It must run before any JAX "
            "computation, once per process"
        ) from e
    return True
