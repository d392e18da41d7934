"""Keras callbacks for video models, one module per concern.

- `checkpoints`: rolling and best checkpoints of the full training state, the configuration they record
  (`StepCheckpoint`, `CheckpointMismatchError`, `model_configuration`), the end at a step (`StopAtStep`).
- `samples`: fixed-noise sample grids as files (`SampleWriter`) and TensorBoard scalars with animated
  sample videos (`VideoSummary`).
- `metrics`: sample metrics during training (`MetricsCallback`) and the pieces it is made of, which
  `vidgen evaluate` uses too (`SAMPLE_METRICS`, `SampleScorer`, `sample_networks`, `generate_videos`, ...).
- `progress`: the losses as JSON lines (`LossLog`), the progress line (`ProgressPrinter`), and the stop on
  divergence (`DivergenceGuard`, `TrainingDivergedError`).

Every name is importable from `vidgen_tf.callbacks` itself.
"""

from vidgen_tf.callbacks.checkpoints import CheckpointMismatchError, StepCheckpoint, StopAtStep, model_configuration
from vidgen_tf.callbacks.metrics import (
    HIGHER_IS_BETTER,
    SAMPLE_METRICS,
    MetricsCallback,
    SampleScorer,
    check_metric_names,
    feature_network_for,
    generate_videos,
    metric_value,
    sample_networks,
)
from vidgen_tf.callbacks.progress import DivergenceGuard, LossLog, ProgressPrinter, TrainingDivergedError
from vidgen_tf.callbacks.samples import SampleWriter, VideoSummary

__all__ = [
    "HIGHER_IS_BETTER",
    "SAMPLE_METRICS",
    "CheckpointMismatchError",
    "DivergenceGuard",
    "LossLog",
    "MetricsCallback",
    "ProgressPrinter",
    "SampleScorer",
    "SampleWriter",
    "StepCheckpoint",
    "StopAtStep",
    "TrainingDivergedError",
    "VideoSummary",
    "check_metric_names",
    "feature_network_for",
    "generate_videos",
    "metric_value",
    "model_configuration",
    "sample_networks",
]
