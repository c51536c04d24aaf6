"""Anchors for the benchmark: the same LSTM classifier written the usual way in each library.

None of these is the project's model; each is what a reader would write without it, measured on
the same batches so that `seqbatch bench` can say where the masked per-example scan stands:

- `flax_nn_rnn`: `flax.linen.RNN(OptimizedLSTMCell)` over the padded batch with `seq_lengths`
  (flax's own handling of lengths: it runs every step and picks each sequence's final carry);
- `torch_padded`: `torch.nn.LSTM` over the padded batch without packing, reading each sequence's
  output at its last real token;
- `jax_cudnn`: the jax backend with its optional cuDNN kernel (jax_impl/cudnn.py); GPU only.

All take one-hot input as the seed tutorial's model does (flax and torch multiply it; the
project's scan gathers the row instead). Each builder returns `step(batch)`: one optimizer update
(the run's TrainConfig optimizer) that returns only when the device has finished it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.batching import Batch
from shared.config import ModelConfig, TrainConfig
from shared.errors import SeqbatchError

Step = Callable[[Batch], None]


def _check(cfg: ModelConfig) -> None:
    if cfg.cell != "lstm" or cfg.num_layers != 1 or cfg.bidirectional:
        raise SeqbatchError(f"anchors are single-layer unidirectional LSTMs; got {cfg.cell} x{cfg.num_layers}")


def flax_nn_rnn(cfg: ModelConfig, train: TrainConfig) -> Step:
    """flax.linen.RNN over OptimizedLSTMCell, `seq_lengths` given; optax's step, jitted and donated."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax

    from jax_impl.train import make_optimizer

    _check(cfg)

    class FlaxLSTMClassifier(nn.Module):
        @nn.compact
        def __call__(self, tokens: jax.Array, lengths: jax.Array) -> jax.Array:
            if cfg.embed_dim is None:
                x = jax.nn.one_hot(tokens, cfg.vocab_size, dtype=jnp.float32)  # (B, T, V)
            else:
                x = nn.Embed(cfg.vocab_size, cfg.embed_dim)(tokens)
            (_, h), _ = nn.RNN(nn.OptimizedLSTMCell(cfg.hidden_size), return_carry=True)(x, seq_lengths=lengths)
            return nn.Dense(cfg.num_classes)(h)

    model = FlaxLSTMClassifier()
    tx = make_optimizer(train)

    def update(params: Any, opt_state: Any, tokens: jax.Array, lengths: jax.Array, labels: jax.Array) -> Any:
        def loss(p: Any) -> jax.Array:
            return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, tokens, lengths), labels).mean()

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    jitted = jax.jit(update, donate_argnums=(0, 1))
    params = model.init(jax.random.key(train.seed), jnp.zeros((1, 1), jnp.int32), jnp.ones((1,), jnp.int32))
    state = [params, tx.init(params)]

    def step(batch: Batch) -> None:
        state[0], state[1], value = jitted(state[0], state[1], batch.tokens, batch.lengths, batch.labels)
        jax.block_until_ready((state[0], value))

    return step


def torch_padded(cfg: ModelConfig, train: TrainConfig) -> Step:
    """torch.nn.LSTM over the padded batch (no packing); the output at each last real token."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from reference_torch.models import DTYPES, default_device

    _check(cfg)
    device = default_device()

    class PaddedLSTMClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if cfg.embed_dim is not None:
                self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
            self.rnn = nn.LSTM(cfg.input_size, cfg.hidden_size, batch_first=True)
            self.head = nn.Linear(cfg.hidden_size, cfg.num_classes)

        def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            if cfg.embed_dim is None:
                x = F.one_hot(tokens.long(), cfg.vocab_size).to(self.head.weight.dtype)  # (B, T, V)
            else:
                x = self.embedding(tokens)
            out, _ = self.rnn(x)  # (B, T, H): every step, padding included
            last = out[torch.arange(tokens.shape[0], device=out.device), lengths - 1]  # (B, H)
            return self.head(last)

    torch.manual_seed(train.seed)
    model = PaddedLSTMClassifier().to(device=device, dtype=DTYPES[cfg.dtype])
    if train.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=train.lr, momentum=train.momentum)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=train.lr)

    def step(batch: Batch) -> None:
        model.train()
        tokens = torch.as_tensor(batch.tokens, device=device)
        lengths = torch.as_tensor(batch.lengths, device=device).long()
        loss = F.cross_entropy(model(tokens, lengths), torch.as_tensor(batch.labels, device=device).long())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def jax_cudnn(cfg: ModelConfig, train: TrainConfig) -> Step:
    """The jax backend's own step with its cuDNN kernel (GPU, LSTM, float32 only)."""
    import jax

    import jax_impl

    holder = [jax_impl.train_state(jax_impl.init(cfg, train.seed), train, kernel="cudnn")]

    def step(batch: Batch) -> None:
        holder[0], metrics = jax_impl.train_step(holder[0], batch)
        jax.block_until_ready((holder[0].model.params, metrics))

    return step


# impl name -> (backend it belongs to, builder, whether it needs a GPU)
ANCHORS: dict[str, tuple[str, Callable[[ModelConfig, TrainConfig], Step], bool]] = {
    "flax_nn_rnn": ("jax", flax_nn_rnn, False),
    "torch_padded": ("torch", torch_padded, False),
    "jax_cudnn": ("jax", jax_cudnn, True),
}
