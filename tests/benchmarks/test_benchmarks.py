"""The performance benchmark's measurement functions and table (benchmarks/models.py, run.py),
run with tiny sizes: every number is finite and positive, and the table has one row per
(system, model, metric)."""

from __future__ import annotations

import math

import pytest

from benchmarks import models as perf
from benchmarks import run as bench_run

TINY = perf.Settings(
    latency_repeats=5,
    batch_repeats=2,
    grad_repeats=2,
    batches=(32,),
    grad_batch=16,
    paths=("vmap", "chunked", "public"),
)
TINY_VMAP = perf.Settings(
    latency_repeats=5, batch_repeats=2, grad_repeats=2, batches=(32,), grad_batch=16, paths=("vmap",)
)
METRICS = [
    "inverse dynamics, 1 sample (jit)",
    "forward dynamics, 1 sample (jit)",
    "inverse dynamics, batch 32",
    "forward dynamics, batch 32",
    "value_and_grad inverse MSE, batch 16",
]


@pytest.mark.parametrize("kind", ["lnn"])  # DeLaN: through run.main below
def test_measure_gives_finite_positive_numbers_for_every_metric(kind):
    rows = perf.measure("two_link_arm", kind, TINY_VMAP)
    assert len(rows) == len(METRICS)
    for row, metric in zip(rows, METRICS):
        assert row.metric.startswith(metric), (row.metric, metric)
        assert math.isfinite(row.value) and row.value > 0, row
        assert (row.system, row.model) == ("two_link_arm", kind)
    assert "PyTorch DeLaN 660 us" in rows[0].reference and "target" not in rows[0].reference


def test_seven_dof_info_and_path_names():
    model = perf.build_model("delan", perf.system_info("panda7"))
    assert model.dof == 7 and model.info.joint_types == ("revolute",) * 7
    q, qd, qdd, tau = perf.random_states(7, None)
    assert q.shape == (7,) and q.dtype == qd.dtype == "float32"
    with pytest.raises(ValueError, match="path"):
        perf.batched_throughput(model, "inverse", batch=8, repeats=1, path="loop")


def test_markdown_table_has_a_row_per_measurement():
    rows = [
        perf.Row("two_link_arm", "delan", "inverse dynamics, 1 sample (jit)", 12.3, "us", "target <= 20 us"),
        perf.Row("panda7", "lnn", "inverse dynamics, batch 1024 (vmap)", 2.5e6, "samples/s"),
    ]
    lines = perf.markdown_table(rows).splitlines()
    assert lines[0].startswith("| system | model | metric | value |")
    assert len(lines) == 2 + len(rows)
    assert "| 12.3 us | target <= 20 us |" in lines[2]
    assert "2,500,000 samples/s" in lines[3]


def test_run_main_writes_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(perf, "QUICK", TINY)
    out = tmp_path / "perf.md"
    assert (
        bench_run.main(["--quick", "--systems", "two_link_arm", "--models", "delan", "--out", str(out)]) == 0
    )
    text = out.read_text()
    assert "Machine:" in text and "JAX" in text and "Command: `python" in text
    table = [line for line in text.splitlines() if line.startswith("| two_link_arm | delan |")]
    assert [line.split(" | ")[2] for line in table][0] == METRICS[0]
    assert len(table) == len(METRICS)
    # TINY times every batched path and names the fastest
    assert all(any(f"({p})" in line for p in TINY.paths) for line in table if "batch 32" in line)
    assert "target <= 20 us" in table[0] and "target >= 1,000,000/s" in table[2]
    assert bench_run.main(["--quick", "--models", "hnn"]) == 2
    assert "unknown model 'hnn'" in capsys.readouterr().err
