"""The one parameter layout both backends use: PyTorch's state_dict names and shapes.

    embedding.weight                    [V, E]        (absent for one-hot input)
    rnn.weight_ih_l{k}[_reverse]        [G*H, In_k]   In_0 = E (or V), In_k = H * directions
    rnn.weight_hh_l{k}[_reverse]        [G*H, H]
    rnn.bias_ih_l{k}[_reverse]          [G*H]         two biases, not one: torch's optimizer
    rnn.bias_hh_l{k}[_reverse]          [G*H]         moves each, so merging them changes training
    head.weight                         [C, H * directions]
    head.bias                           [C]
"""

from __future__ import annotations

from shared.config import ModelConfig


def suffix(layer: int, reverse: bool) -> str:
    return f"_l{layer}" + ("_reverse" if reverse else "")


def parameter_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in torch's state_dict order."""
    gh = cfg.gates * cfg.hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    if cfg.embed_dim is not None:
        shapes["embedding.weight"] = (cfg.vocab_size, cfg.embed_dim)
    for k in range(cfg.num_layers):
        width = cfg.input_size if k == 0 else cfg.feature_size
        for reverse in (False, True)[: cfg.directions]:
            s = suffix(k, reverse)
            shapes[f"rnn.weight_ih{s}"] = (gh, width)
            shapes[f"rnn.weight_hh{s}"] = (gh, cfg.hidden_size)
            shapes[f"rnn.bias_ih{s}"] = (gh,)
            shapes[f"rnn.bias_hh{s}"] = (gh,)
    shapes["head.weight"] = (cfg.num_classes, cfg.feature_size)
    shapes["head.bias"] = (cfg.num_classes,)
    return shapes


def init_bound(cfg: ModelConfig, name: str) -> float | None:
    """PyTorch's default init: U(-1/sqrt(H), 1/sqrt(H)) for the recurrent weights,
    U(-1/sqrt(D), 1/sqrt(D)) for the head; None means N(0, 1) (the embedding)."""
    if name.startswith("rnn."):
        return cfg.hidden_size**-0.5
    if name.startswith("head."):
        return cfg.feature_size**-0.5
    return None
