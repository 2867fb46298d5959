"""The command-line interface: ``lagrax COMMAND``, one module per command.

* ``lagrax systems`` (:mod:`~lagrax.cli.systems`): the ground-truth systems, a table;
* ``lagrax generate --system NAME`` (:mod:`~lagrax.cli.generate`): a system's motion or
  states as a dataset file (or a directory of shards);
* ``lagrax import LOG`` (:mod:`~lagrax.cli.importing`): a robot log (CSV, ROS bag) as a dataset;
* ``lagrax plot DATA`` (:mod:`~lagrax.cli.plot`): a dataset's q, qd and tau as a figure;
* ``lagrax rollout [RUN]`` (:mod:`~lagrax.cli.rollout`): integrate a trained model or a
  ground truth (``--system``) from initial states, and compare;
* ``lagrax control [RUN...] --system NAME`` (:mod:`~lagrax.cli.control`): closed-loop
  tracking with learned models, and online learning;
* ``lagrax train`` (:mod:`~lagrax.cli.train`): train a model, write its run directory;
* ``lagrax sweep SPACE`` (:mod:`~lagrax.cli.sweep`): search training settings with Optuna;
* ``lagrax evaluate RUN`` (:mod:`~lagrax.cli.evaluate`): a trained model's metrics;
* ``lagrax report RUN`` (:mod:`~lagrax.cli.report`): RUN/report.md with its figures;
* ``lagrax export RUN`` (:mod:`~lagrax.cli.export`): a trained model as an ONNX or StableHLO
  file for loops outside Python;
* ``lagrax demo`` (:mod:`~lagrax.cli.demo`): data, training, evaluation, report, end to end;
* ``lagrax bench NAME`` (:mod:`~lagrax.cli.bench`): a benchmark's markdown table.

Strings become objects here (system and model names, ``-p``/``-O`` settings, parsed by
:mod:`~lagrax.cli.params`); no physics or data handling lives here. Each command's
options are the fields of a typed, frozen request (:mod:`~lagrax.cli.command`) that its
``run`` hands on to the library. :mod:`~lagrax.cli.app` makes the typer application and
:func:`main`, the console script, which turns every user error into one line
``error: ...`` and exit code 2. Heavy imports (JAX, Pinocchio) happen inside the commands
so that ``lagrax --help`` stays fast.
"""

from lagrax.cli.app import app, main

__all__ = ["app", "main"]
