"""The one parameter layout both backends use: PyTorch's state_dict names and shapes, per model kind.

Classifier (`shared/kinds/classifier.py`):

    embedding.weight                    [V, E]        (absent for one-hot input)
    rnn.weight_ih_l{k}[_reverse]        [G*H, In_k]   In_0 = E (or V), In_k = H * directions
    rnn.weight_hh_l{k}[_reverse]        [G*H, H]
    rnn.bias_ih_l{k}[_reverse]          [G*H]         two biases, not one: torch's optimizer
    rnn.bias_hh_l{k}[_reverse]          [G*H]         moves each, so merging them changes training
    head.weight                         [C, H * directions]
    head.bias                           [C]

Language model (`shared/kinds/lm.py`): the same embedding and unidirectional `rnn.*` tensors, and a
head over the vocabulary at every step, `head.weight [V, H]`, `head.bias [V]`.

`parameter_shapes` and `init_bound` work for any kind: they look the config's kind up.
"""

from __future__ import annotations

from typing import Any

from shared.config import ModelConfig


def suffix(layer: int, reverse: bool) -> str:
    return f"_l{layer}" + ("_reverse" if reverse else "")


def rnn_shapes(
    *, gates: int, hidden: int, layers: int, directions: int, input_size: int
) -> dict[str, tuple[int, ...]]:
    """`rnn.*` tensors of a torch nn.RNN/LSTM/GRU, in state_dict order."""
    gh = gates * hidden
    shapes: dict[str, tuple[int, ...]] = {}
    for k in range(layers):
        width = input_size if k == 0 else hidden * directions
        for reverse in (False, True)[:directions]:
            s = suffix(k, reverse)
            shapes[f"rnn.weight_ih{s}"] = (gh, width)
            shapes[f"rnn.weight_hh{s}"] = (gh, hidden)
            shapes[f"rnn.bias_ih{s}"] = (gh,)
            shapes[f"rnn.bias_hh{s}"] = (gh,)
    return shapes


def classifier_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every classifier parameter's name and shape, in torch's state_dict order."""
    shapes: dict[str, tuple[int, ...]] = {}
    if cfg.embed_dim is not None:
        shapes["embedding.weight"] = (cfg.vocab_size, cfg.embed_dim)
    shapes |= rnn_shapes(gates=cfg.gates, hidden=cfg.hidden_size, layers=cfg.num_layers,
                         directions=cfg.directions, input_size=cfg.input_size)
    shapes["head.weight"] = (cfg.num_classes, cfg.feature_size)
    shapes["head.bias"] = (cfg.num_classes,)
    return shapes


def torch_default_bound(name: str, hidden: int, head_in: int) -> float | None:
    """PyTorch's default init: U(-1/sqrt(H), 1/sqrt(H)) for the recurrent weights,
    U(-1/sqrt(D), 1/sqrt(D)) for the head (D its input width); None means N(0, 1) (the embedding)."""
    if name.startswith("rnn."):
        return hidden**-0.5
    if name.startswith("head."):
        return head_in**-0.5
    return None


def classifier_init_bound(cfg: ModelConfig, name: str) -> float | None:
    return torch_default_bound(name, cfg.hidden_size, cfg.feature_size)


def parameter_shapes(cfg: Any) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape for a config of any kind, in torch's state_dict order."""
    from shared.kinds import kind_of

    return kind_of(cfg).parameter_shapes(cfg)


def init_bound(cfg: Any, name: str) -> float | None:
    """The U(-b, b) bound of parameter `name` (None: N(0, 1)), for a config of any kind."""
    from shared.kinds import kind_of

    return kind_of(cfg).init_bound(cfg, name)


def shared_init(cfg: Any, seed: int) -> dict[str, Any]:
    """Initial weights drawn once in NumPy from each parameter's distribution (`init_bound`: U(-b, b),
    zeros for a bound of 0, N(0, 1) for None), in layout order from one seeded generator, in the
    config's dtype: the same numbers for both backends (`--init shared`)."""
    import numpy as np

    rng = np.random.default_rng([seed, 0x5EED])
    out: dict[str, Any] = {}
    for name, shape in parameter_shapes(cfg).items():
        bound = init_bound(cfg, name)
        if bound is None:
            value = rng.standard_normal(shape)
        elif bound == 0:
            value = np.zeros(shape)
        else:
            value = rng.uniform(-bound, bound, shape)
        out[name] = value.astype(cfg.dtype)
    return out


def check_freeze(cfg: Any, names: tuple[str, ...]) -> None:
    """A TrainConfig's `freeze` must name parameters of the model, and leave at least one to train."""
    from shared.errors import SeqbatchError

    shapes = parameter_shapes(cfg)
    unknown = sorted(set(names) - set(shapes))
    if unknown:
        raise SeqbatchError(f"cannot freeze {', '.join(unknown)}: the model's parameters are {', '.join(shapes)}")
    if set(shapes) <= set(names):
        raise SeqbatchError("freezing every parameter leaves nothing to train")


def training_bytes(cfg: Any) -> int:
    """Bytes a training run holds per parameter set at least: weights, gradients and two optimizer
    moments (Adam), in the config's dtype. Activations come on top."""
    import math

    count = sum(math.prod(s) for s in parameter_shapes(cfg).values())
    return count * (8 if cfg.dtype == "float64" else 4) * 4


def check_fits_memory(cfg: Any) -> None:
    """Refuse a model whose weights, gradients and optimizer state alone exceed this machine's memory
    (before anything is allocated: torch and XLA would otherwise fail deep inside with a traceback)."""
    import os

    from shared.errors import SeqbatchError

    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: let the allocator decide
        return
    need = training_bytes(cfg)
    if need > total:
        raise SeqbatchError(f"the model needs at least {need / 2**30:.1f} GiB for its weights, gradients and "
                            f"optimizer state; this machine has {total / 2**30:.1f} GiB: lower --hidden, --layers "
                            "or --embed-dim")
