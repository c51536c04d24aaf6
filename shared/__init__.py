"""Backend-neutral half of seqbatch: config, data, vocabularies, batches, splits, metrics, checkpoints.

Never imports torch or jax; backends are imported lazily by name (shared.backend.get_backend).
"""

from shared.batching import Batch, Sampler, bucket_length, length_mask, pad
from shared.config import ModelConfig, TrainConfig
from shared.errors import SeqbatchError
from shared.examples import Examples
from shared.vocab import Vocab

__all__ = [
    "Batch",
    "Examples",
    "ModelConfig",
    "Sampler",
    "SeqbatchError",
    "TrainConfig",
    "Vocab",
    "bucket_length",
    "length_mask",
    "pad",
]
