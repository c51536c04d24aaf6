"""The sequence classifier kind: tokens[B, T] + lengths -> logits[B, C]; selected on validation top-1.

Its config is `shared.config.ModelConfig` (the first kind, kept where it was so that format-1
checkpoints and existing code read it unchanged), its batch `shared.batching.Batch`, its layout
`shared.layout.classifier_shapes`, its metrics `shared.metrics.classification_report`.
"""

from __future__ import annotations

from shared.config import ModelConfig
from shared.kinds import Kind
from shared.layout import classifier_init_bound, classifier_shapes

KIND = Kind("classifier", ModelConfig, classifier_shapes, classifier_init_bound, select_metric="top1",
            higher_is_better=True)
