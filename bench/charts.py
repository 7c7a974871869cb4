"""Charts of the benchmarks' latest figures, for docs/develop/benchmarks.md.

Usage: .venv/bin/python bench/charts.py   (redraws both from .bench/controller.json and
.bench/pool.json; the benchmarks call the functions themselves when they finish)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "develop" / "img"
PERCENTILES = tuple(range(1, 101))


def _pyplot() -> Any:
    import matplotlib  # noqa: PLC0415 - only when drawing

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _percentile_curve(values: Sequence[float]) -> list[float]:
    ordered = sorted(values)
    return [ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] for p in PERCENTILES]


def pool_chart(results: Mapping[str, Any], out: Path = IMAGES / "pool-bench.png") -> Path:
    """Time to Ready and to the first reply, by percentile, pooled against cold."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    styles = {"pool": "tab:green", "cold": "tab:red"}
    for phase, color in styles.items():
        samples = results[phase]["samples"]
        ax.plot(PERCENTILES, _percentile_curve(samples["ready"]), color=color,
                label=f"{phase}: to Ready")  # fmt: skip
        ax.plot(PERCENTILES, _percentile_curve(samples["reply"]), color=color, linestyle="--",
                label=f"{phase}: to first execute_reply")  # fmt: skip
    ax.set_xlabel("percentile of Kernels")
    ax.set_ylabel("seconds from the create request")
    ax.set_title(
        f"{results['kernels']} Kernels at once, {results['rounds']} rounds, real kernels "
        "(make bench-pool)"
    )
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(plt, fig, out)


def _save(plt: Any, fig: Any, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def controller_chart(
    results: Mapping[str, Any], out: Path = IMAGES / "controller-bench.png"
) -> Path:
    """Per run: the burst's time with the controller against the floor and the baseline."""
    plt = _pyplot()
    runs = results["runs"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    width = 0.25
    xs = range(len(runs))
    bars = (
        ("controller: every Pod and Service", "children_seconds", "tab:blue"),
        ("floor: the same writes, no controller", "floor_seconds", "tab:gray"),
        ("baseline: Pods and Services only", "baseline_seconds", "tab:olive"),
    )
    for n, (label, key, color) in enumerate(bars):
        ax.bar([x + (n - 1) * width for x in xs], [r[key] for r in runs], width,
               label=label, color=color)  # fmt: skip
    ax.set_xticks(list(xs), [f"run {x + 1}" for x in xs])
    ax.set_ylabel("seconds")
    ax.set_title(f"a burst of {results['kernels']} Kernels (make bench)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, fontsize="small")
    return _save(plt, fig, out)


def main() -> int:
    for name, draw in (("controller.json", controller_chart), ("pool.json", pool_chart)):
        path = REPO / ".bench" / name
        if path.is_file():
            print(f"wrote {draw(json.loads(path.read_text()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
