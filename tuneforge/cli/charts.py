"""Loss curves: in the terminal (plotext) and as a PNG (matplotlib, optional)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from tuneforge.errors import InvalidInput

ACCURACY = "reward_accuracy"  # the column preference-tuning jobs add (tuneforge.training.metrics)


def _series(rows: list[dict], column: str) -> tuple[list[int], list[float]]:
    return [int(r["step_number"]) for r in rows], [float(r[column]) for r in rows]


def loss_chart(training: list[dict], validation: list[dict], *, title: str, width: int = 80, height: int = 20) -> Text:
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, height)
    plt.title(title)
    plt.xlabel("step")
    plt.plot(*_series(training, "training_loss"), label="training loss", marker="braille")
    if validation:
        plt.scatter(*_series(validation, "validation_loss"), label="validation loss", marker="dot")
    if training and ACCURACY in training[0]:  # preference tuning: on the same 0-1 scale as a DPO loss near log 2
        plt.plot(*_series(training, ACCURACY), label="reward accuracy", marker="dot")
    return Text.from_ansi(plt.build())


def loss_png(training: list[dict], validation: list[dict], path: Path, *, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidInput("writing a PNG needs matplotlib: pip install 'tuneforge[charts]'", field="--png") from None
    figure, axis = plt.subplots(figsize=(8, 4.5))
    axis.plot(*_series(training, "training_loss"), label="training loss")
    if validation:
        axis.plot(*_series(validation, "validation_loss"), "o-", label="validation loss")
    if training and ACCURACY in training[0]:
        axis.plot(*_series(training, ACCURACY), label="reward accuracy (chosen over rejected)")
    if validation and ACCURACY in validation[0]:
        axis.plot(*_series(validation, ACCURACY), "s--", label="validation reward accuracy")
    axis.set_xlabel("step")
    axis.set_ylabel("loss" if not (training and ACCURACY in training[0]) else "loss / reward accuracy")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def bars_png(groups: dict[str, dict[str, float]], path: Path, *, title: str, ylabel: str) -> None:
    """Grouped bars: one group per metric (e.g. rouge1, rouge2, rougeL), one bar per model within it, labelled."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidInput("writing a chart needs matplotlib: pip install 'tuneforge[charts]'", field="--chart") from None
    models = list(next(iter(groups.values())))
    width = 0.8 / len(models)
    figure, axis = plt.subplots(figsize=(max(5.0, 1.6 * len(groups) * len(models)), 4.5))
    for i, model in enumerate(models):
        xs = [g + (i - (len(models) - 1) / 2) * width for g in range(len(groups))]
        bars = axis.bar(xs, [groups[name][model] for name in groups], width, label=model)
        axis.bar_label(bars, fmt="%.4g", fontsize=8)
    axis.set_xticks(range(len(groups)), list(groups))
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
