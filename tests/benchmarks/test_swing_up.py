"""The swing-up benchmark (benchmarks.swing_up) runs end to end at --quick size on the
cart-pole and writes its table, with no NaN. The test runs the analytic rows only
(``--analytic-only``): data and training would triple its time (measured: 24 s of CPU for
the whole --quick against 6 s)."""

from __future__ import annotations

import json

from benchmarks import swing_up


def test_swing_up_quick(tmp_path, capsys):
    out = tmp_path / "swing_up.md"
    assert swing_up.main(["--quick", "--analytic-only", "--out", str(out)]) == 0
    text = out.with_suffix(".json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    (system,) = json.loads(text)["rows"]
    rows = {r["row"]: r for r in system["rows"]}
    assert system["system"] == "cartpole"
    assert list(rows) == ["true model", "identified, friction ignored"]
    assert rows["true model"]["balance"] == 1.0  # the truth's LQR holds the top
    for name, row in rows.items():
        assert 0.0 <= row["success"] <= 1.0 and 0.0 <= row["balance"] <= 1.0, name
    assert "| true model |" in capsys.readouterr().out and "### cartpole" in out.read_text()
