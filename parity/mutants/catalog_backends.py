"""Mutants in the two backends: cells, masks, dropout, clipping, optimizer settings, carried state,
initialisation, the divergence guard and the run state a resume restores."""

from __future__ import annotations

from parity.mutants import Mutant

DROPOUT = ("tests/test_dropout.py",)
PARITY = ("tests/parity/test_parity.py",)
PARITY_LM = ("tests/parity/test_parity_lm.py",)
TRAJECTORIES = ("tests/parity/test_parity_training.py",)
RUNS = ("tests/test_runs.py",)

MUTANTS: list[Mutant] = [
    Mutant("jax-dropout-off", "the JAX classifier builds its dropout deterministic: no unit is ever dropped",
           "jax_impl/models/classifier.py", "x = nn.Dropout(cfg.dropout, deterministic=False)(x)",
           "x = nn.Dropout(cfg.dropout, deterministic=True)(x)", DROPOUT),
    Mutant("jax-lm-no-dropout-before-head", "the JAX language model skips the dropout before its head",
           "jax_impl/models/lm.py", 'return dropout(x) @ param("head.weight").T', 'return x @ param("head.weight").T',
           DROPOUT),
    Mutant("torch-dropout-in-eval", "the torch classifier drops units in evaluation too",
           "reference_torch/models/classifier.py", "inputs = F.dropout(inputs, rnn.dropout, training=self.training)",
           "inputs = F.dropout(inputs, rnn.dropout, training=True)", DROPOUT),
    Mutant("torch-lm-dropout-keep-rate", "the torch LM passes the keep probability where the drop rate belongs",
           "reference_torch/models/lm.py", "self.drop = nn.Dropout(cfg.dropout)",
           "self.drop = nn.Dropout(1 - cfg.dropout)", DROPOUT),
    Mutant("jax-lstm-gates-swapped", "the JAX LSTM reads the input and forget gates in the wrong order",
           "jax_impl/models/common.py", "i, f, g, o = jnp.split(z, 4)", "f, i, g, o = jnp.split(z, 4)", PARITY),
    Mutant("jax-gru-reset-on-input", "the JAX GRU applies the reset gate to the input part, not the hidden part",
           "jax_impl/models/common.py", "n = jnp.tanh(i_n + r * h_n)", "n = jnp.tanh(r * i_n + h_n)", PARITY),
    Mutant("jax-mask-ignored", "the JAX scan lets padding steps update the carried state",
           "jax_impl/models/common.py", "carry = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, carry)",
           "carry = new", PARITY),
    Mutant("jax-hidden-bias-dropped", "the JAX cell forgets the hidden bias",
           "jax_impl/models/common.py", "gh = w_hh @ h + b_hh", "gh = w_hh @ h", PARITY),
    Mutant("jax-clip-without-epsilon", "JAX clips by max_norm / norm, not torch's max_norm / (norm + 1e-6)",
           "jax_impl/train.py", "scale = jnp.minimum(1.0, max_norm / (norm + 1e-6))",
           "scale = jnp.minimum(1.0, max_norm / norm)", ("tests/test_train_contract.py",)),
    Mutant("torch-clip-ignored", "torch never clips: --clip-norm is read but not passed on",
           "reference_torch/train.py",
           'max_norm = cfg.clip_norm if cfg.clip_norm is not None else float("inf")', 'max_norm = float("inf")',
           ("tests/test_train_contract.py",)),
    Mutant("jax-sgd-momentum-dropped", "JAX's SGD ignores the momentum setting",
           "jax_impl/train.py", "opt = optax.sgd(cfg.lr, momentum=cfg.momentum if cfg.momentum else None)",
           "opt = optax.sgd(cfg.lr)", TRAJECTORIES),
    Mutant("torch-adam-eps", "torch's Adam gets another epsilon than optax's",
           "reference_torch/train.py", "return torch.optim.Adam(model.parameters(), lr=cfg.lr)",
           "return torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=1e-6)", TRAJECTORIES),
    Mutant("jax-lm-carry-reset-inverted", "the JAX LM starts from zeros where it should carry the state, and back",
           "jax_impl/models/lm.py", "    if carry is None or batch.reset:\n        return tuple(jnp.zeros",
           "    if carry is None or not batch.reset:\n        return tuple(jnp.zeros", PARITY_LM),
    Mutant("torch-lm-carry-not-kept", "the torch LM's train step forgets the state the window left",
           "reference_torch/models/lm.py",
           "        state.carry = tuple(c.detach() for c in new)  # truncated BPTT",
           "        state.carry = None  # truncated BPTT", PARITY_LM),
    Mutant("jax-init-one-sided", "JAX initialises uniformly in [0, bound] instead of [-bound, bound]",
           "jax_impl/models/common.py", "jax.random.uniform(key, shape, dtype, -bound, bound)",
           "jax.random.uniform(key, shape, dtype, 0.0, bound)", ("tests/test_init.py",)),
    Mutant("jax-guard-ignores-max-loss", "the JAX guard checks only finiteness, never --max-loss",
           "jax_impl/train.py", "    if cfg.max_loss is not None:\n        ok = ok & (loss <= cfg.max_loss)",
           "    if cfg.max_loss is None:\n        ok = ok & (loss <= cfg.max_loss)", RUNS),
    Mutant("torch-guard-applies-bad-steps", "torch applies a bad step's update anyway",
           "reference_torch/train.py", "    if ok:\n        state.optimizer.step()",
           "    if True:\n        state.optimizer.step()", ("tests/test_train_contract.py",)),
    Mutant("torch-resume-without-rng", "a resumed torch run starts its dropout generator from the seed again",
           "reference_torch/train.py",
           "    load_optimizer_arrays(model, state.optimizer, arrays)\n    load_rng_arrays(_device(model), arrays)\n"
           "    state.step = step",
           "    load_optimizer_arrays(model, state.optimizer, arrays)\n    state.step = step", RUNS),
    Mutant("jax-resume-fresh-optimizer", "a resumed JAX classifier run starts from a fresh optimizer state",
           "jax_impl/train.py",
           "    return dataclasses.replace(state, opt_state=load_optimizer_arrays(state.opt_state, arrays),\n"
           "                               key=load_key(arrays, state.key), step=step)",
           "    return dataclasses.replace(state, key=load_key(arrays, state.key), step=step)", RUNS),
    Mutant("jax-lm-head-bias-dropped", "the JAX language model's head forgets its bias",
           "jax_impl/models/lm.py", '@ param("head.weight").T + param("head.bias"), new',
           '@ param("head.weight").T, new', PARITY_LM),
    Mutant("torch-lm-ragged-not-packed", "the torch LM runs ragged documents unpacked: padding moves the state",
           "reference_torch/models/lm.py", "if bool((lengths == time).all()):", "if True:", PARITY_LM),
    Mutant("torch-lm-reset-ignored", "the torch LM carries the state across a reset (a new epoch or document)",
           "reference_torch/models/lm.py", "    if carry is None or batch.reset:\n        return tuple(like.new_zeros",
           "    if carry is None:\n        return tuple(like.new_zeros", PARITY_LM),
]
