"""The experiment harness the lessons measure with: training runs that differ in one thing
(`training`), tables of measured numbers (`tables`), figures as data (`figures`), and CPU cost
measures (`measure`)."""
from minimind.lab.figures import BarFigure, HeatmapFigure, LineFigure, Panels, loss_curves
from minimind.lab.tables import Table
from minimind.lab.training import (
    Comparison,
    Run,
    TrainSettings,
    compare,
    fit,
    lm_loss,
    lr_at,
    nudge_weights,
    perturbation,
    randomize_weights,
    run_parallel,
    threads,
    train_lm,
)

__all__ = [
    "BarFigure", "Comparison", "HeatmapFigure", "LineFigure", "Panels", "Run", "Table",
    "TrainSettings", "compare", "fit", "lm_loss", "loss_curves", "lr_at", "nudge_weights",
    "perturbation", "randomize_weights", "run_parallel", "threads", "train_lm",
]
