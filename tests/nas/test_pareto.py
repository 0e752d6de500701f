"""Pareto front and hypervolume on hand-made points."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nas.core.pareto import Constraint, Objective, hypervolume, pareto_front

ACC, LAT = Objective("accuracy", "max"), Objective("latency", "min")
POINTS = [
    {"accuracy": 0.90, "latency": 5.0},  # front
    {"accuracy": 0.80, "latency": 3.0},  # dominated by 4
    {"accuracy": 0.70, "latency": 4.0},  # dominated
    {"accuracy": 0.60, "latency": 1.0},  # front
    {"accuracy": 0.85, "latency": 2.0},  # front
]


def test_front_in_mixed_directions() -> None:
    assert pareto_front(POINTS, [ACC, LAT]) == [0, 3, 4]
    assert pareto_front(POINTS, [ACC]) == [0]
    assert pareto_front(POINTS, [LAT]) == [3]


def test_constraints_exclude_infeasible_points() -> None:
    assert pareto_front(POINTS, [ACC, LAT], [Constraint("latency", max=4.0)]) == [3, 4]
    assert pareto_front(POINTS, [ACC, LAT], [Constraint("accuracy", min=0.95)]) == []
    assert pareto_front([*POINTS, {"accuracy": 0.99}], [ACC, LAT], [Constraint("latency", max=9)]) == [0, 3, 4]


def test_hypervolume_by_hand() -> None:
    # minimise (-acc, lat) with reference (-0.5, 6): boxes of the three front points
    # x = -acc: [-0.90, -0.85) height 6-5=1 -> 0.05; [-0.85, -0.60) height 6-2=4 -> 1.0;
    # [-0.60, -0.50] height 6-1=5 -> 0.5
    hv = hypervolume(POINTS, [ACC, LAT], {"accuracy": 0.5, "latency": 6.0})
    assert hv == pytest.approx(0.05 + 1.0 + 0.5)
    assert hypervolume(POINTS, [ACC, LAT], {"accuracy": 0.95, "latency": 0.5}) == 0.0
    with pytest.raises(ValueError, match="reference: no value for"):
        hypervolume(POINTS, [ACC, LAT], {"accuracy": 0.5})


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="direction"):
        Objective("accuracy", "up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="point 1 has no metric 'latency'"):
        pareto_front([{"accuracy": 1.0, "latency": 1.0}, {"accuracy": 2.0}], [ACC, LAT])


def test_pareto_module_imports_nothing_heavy() -> None:
    code = "import sys, nas.core.pareto; assert not {'torch', 'pymoo', 'ray'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_reference_sets_one_degenerate_arch_aside() -> None:
    """An NB201 cell with no path (10% accuracy, ~0 latency) must not set the reference alone."""
    from nas.trials import reference_point

    rng = np.random.default_rng(0)
    real = [
        {"accuracy": float(a), "latency": float(t)} for a, t in zip(rng.uniform(0.86, 0.93, 39), rng.uniform(5, 20, 39))
    ]
    degenerate = {"accuracy": 0.10, "latency": 0.0034}
    ref = reference_point([*real, degenerate], [ACC, LAT], None)
    assert ref["accuracy"] >= min(p["accuracy"] for p in real)  # the 10% arch is set aside
    hv_real = hypervolume(real, [ACC, LAT], ref)
    assert hypervolume([*real, degenerate], [ACC, LAT], ref) == pytest.approx(hv_real)  # it adds nothing
    # the plain nadir would let it take over: far more hypervolume than all real archs together
    nadir = {"accuracy": 0.10, "latency": max(p["latency"] for p in real)}
    assert hypervolume([*real, degenerate], [ACC, LAT], nadir) > 10 * hv_real
    # two points: nothing set aside; the spec's reference wins
    assert reference_point(real[:2], [ACC, LAT], None)["accuracy"] == min(p["accuracy"] for p in real[:2])
    assert reference_point(real, [ACC, LAT], {"accuracy": 0.5, "latency": 30.0}) == {"accuracy": 0.5, "latency": 30.0}


def test_front_plot_draws_the_staircase_and_tells_constraints_from_bounds(monkeypatch) -> None:
    import io

    import matplotlib.pyplot as plt

    from nas.queries import plot_front

    kept = []
    monkeypatch.setattr(plt, "close", lambda fig: kept.append(fig))
    points = [{"accuracy": 0.9, "latency": 5.0}, {"accuracy": 0.8, "latency": 2.0}, {"accuracy": 0.95, "latency": 9.0},
              {"accuracy": 0.7, "latency": 4.0}]  # fmt: skip
    buf = io.BytesIO()
    plot_front(points, [1, 0], [ACC, LAT], [Constraint("latency", max=8.0)], buf, "t",
               bounds=[Constraint("latency", max=6.0)])  # fmt: skip
    assert buf.getvalue().startswith(b"\x89PNG")
    ax = kept[0].axes[0]
    steps = [line for line in ax.lines if line.get_drawstyle() == "steps-post"]
    assert len(steps) == 1 and list(steps[0].get_xdata()) == [2.0, 5.0]  # sorted by latency, a staircase
    colours = {line.get_label().split(":")[0]: line.get_color() for line in ax.lines if ":" in line.get_label()}
    assert colours["constraint"] != colours["bound"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "breaks a constraint or bound" in legend  # the 9 ms arch is drawn apart (hollow)
    hollow = ax.collections[1]
    assert len(hollow.get_offsets()) == 1 and hollow.get_facecolors().size == 0
