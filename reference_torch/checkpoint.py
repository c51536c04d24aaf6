"""Read and write the shared checkpoint format (shared/checkpoint.py) from a torch model."""

from __future__ import annotations

from pathlib import Path

from reference_torch.models import SequenceClassifier, from_params, to_params
from shared import checkpoint
from shared.vocab import Vocab


def save(
    model: SequenceClassifier, path: str | Path, *, vocab: Vocab | None = None, labels: list[str] | None = None
) -> None:
    checkpoint.save(path, checkpoint.Checkpoint(model.cfg, to_params(model), vocab, labels))


def load(path: str | Path) -> SequenceClassifier:
    ckpt = checkpoint.load(path)
    return from_params(ckpt.config, ckpt.params)
