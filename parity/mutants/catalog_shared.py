"""Semantic mutants in shared/ (data, batching, metrics, checkpoints, training loops, run folders),
in the command line (flags reaching the config, the backend a command runs, exit codes) and in
parity/ itself (what is compared, against which tolerance). Each is a bug someone could write; its
`tests` are the fewest, fastest tests that must notice it. Run with `python -m parity.mutants`.
"""

from __future__ import annotations

from parity.mutants import Mutant

CLI = "shared/cli/classify.py"
LM_CLI = "shared/cli/lm.py"
T_CLI = "tests/test_cli.py"
T_CLI_RUNS = "tests/test_cli_runs.py"
T_BACKEND = "tests/test_cli_backend_choice.py"
T_FLAGS = "tests/test_flags_reach_config.py"
T_BEST = "tests/test_keep_best.py"
T_SPLIT = "tests/test_eval_split_seed.py"

DATA: list[Mutant] = [
    Mutant("split-seed-ignored", "the train/val/test split draws from seed 0 whatever --seed says",
           "shared/splits.py", "rng = np.random.default_rng(seed)", "rng = np.random.default_rng(0)",
           ("tests/shared/test_splits.py",)),
    Mutant("dedup-by-text-only", "deduplication drops a name seen under a second label, not only repeated pairs",
           "shared/splits.py", "        if pair not in seen:", "        if pair[0] not in {p[0] for p in seen}:",
           ("tests/shared/test_splits.py",)),
    Mutant("vocab-min-freq-off-by-one", "the vocabulary keeps tokens seen more than min_freq times, not at least",
           "shared/vocab.py", "if c >= min_freq)", "if c > min_freq)", ("tests/shared/test_vocab.py",)),
    Mutant("vocab-cap-forgets-pad-unk", "max_vocab caps the real tokens, so the vocabulary holds 2 entries too many",
           "shared/vocab.py", "kept = kept[: max(0, max_size - 2)]", "kept = kept[:max_size]",
           ("tests/shared/test_vocab.py",)),
    Mutant("mask-covers-first-pad", "the mask marks the first padding position as real",
           "shared/batching.py", "return np.arange(time)[None, :] < np.asarray(lengths)[:, None]",
           "return np.arange(time)[None, :] <= np.asarray(lengths)[:, None]", ("tests/shared/test_batching.py",)),
    Mutant("pad-before-tokens", "padding goes in front of the real tokens while lengths say they come first",
           "shared/batching.py", "tokens[i, : len(s)] = s", "tokens[i, t - len(s) :] = s",
           ("tests/shared/test_batching.py",)),
    Mutant("epoch-sampler-drops-last-batch", "an epoch drops its last short batch: some examples never train",
           "shared/batching.py", "return [order[i : i + self.batch_size] for i in range(0, self.n, self.batch_size)]",
           "return [order[i : i + self.batch_size] for i in range(0, self.n - self.batch_size + 1, self.batch_size)]",
           ("tests/shared/test_batching.py",)),
    Mutant("sampler-ignores-seed", "every sampler draws from seed 0", "shared/batching.py",
           "self.rng = np.random.default_rng(seed)", "self.rng = np.random.default_rng(0)",
           ("tests/shared/test_batching.py",)),
    Mutant("top2-is-top1", "the report's top2 is computed with k=1", "shared/metrics.py",
           '"top2": top_k_accuracy(logits, labels, 2)', '"top2": top_k_accuracy(logits, labels, 1)',
           ("tests/shared/test_metrics.py",)),
    Mutant("confusion-transposed", "the confusion matrix has predictions as rows", "shared/metrics.py",
           "confusion_matrix(labels, logits.argmax(axis=1), labels=",
           "confusion_matrix(logits.argmax(axis=1), labels, labels=", ("tests/shared/test_metrics.py",)),
    Mutant("checkpoint-split-not-read", "load ignores seqbatch.split: a lone checkpoint forgets its split seed",
           "shared/checkpoint.py", 'split = _optional(path, meta, "seqbatch.split", _split)', "split = None",
           ("tests/shared/test_checkpoint.py",)),
    Mutant("checkpoint-saves-float32", "save writes float32 tensors for a float64 model", "shared/checkpoint.py",
           "out[name] = np.ascontiguousarray(arr, dtype=dtype)",
           "out[name] = np.ascontiguousarray(arr, dtype=np.float32)", ("tests/shared/test_checkpoint.py",)),
    Mutant("stream-epoch-never-resets", "the first window of each epoch carries the last epoch's state",
           "shared/lm_data.py", "np.full(rows, x.shape[1], np.int32), reset=k == 0)",
           "np.full(rows, x.shape[1], np.int32), reset=False)", ("tests/shared/test_lm_data.py",)),
    Mutant("doc-split-seed-ignored", "the LM's document split ignores its seed", "shared/lm_data.py",
           "test_size=FRACTIONS[1] + FRACTIONS[2], random_state=cfg.seed)",
           "test_size=FRACTIONS[1] + FRACTIONS[2], random_state=0)", ("tests/shared/test_lm_data.py",)),
]

TRAINING: list[Mutant] = [
    Mutant("keep-best-picks-worst", "--keep-best keeps the validation with the lowest top-1", "shared/training.py",
           "lambda new, old: new[select] > old[select]", "lambda new, old: new[select] < old[select]", (T_BEST,)),
    Mutant("keep-best-latest-among-equals", "--keep-best takes the latest of equal validations, not the earliest",
           "shared/training.py", "lambda new, old: new[select] > old[select]",
           "lambda new, old: new[select] >= old[select]", (T_BEST,)),
    Mutant("keep-best-tests-last-weights", "--keep-best reports the best validation but tests and saves the last "
           "weights", "shared/training.py",
           "model = backend.from_params(backend.config_of(model), loop.best.params)", "model = model", (T_BEST,)),
    Mutant("lm-keep-best-highest-loss", "the LM keeps the validation with the highest loss", "shared/lm_training.py",
           'lambda new, old: new["nats_per_char"] < old["nats_per_char"]',
           'lambda new, old: new["nats_per_char"] > old["nats_per_char"]', (T_BEST,)),
    Mutant("lm-eval-mean-of-batch-means", "LM evaluation averages the batches' means: a short last window weighs "
           "as much as a full one", "shared/lm_training.py",
           "total += float(np.asarray(per_token, np.float64).sum())\n        n += batch.n_tokens",
           "total += float(np.asarray(per_token, np.float64).sum()) / batch.n_tokens\n        n += 1",
           ("tests/test_lm_eval.py",)),
    Mutant("lm-eval-counts-padding", "LM evaluation divides by every position of a batch, padding included",
           "shared/lm_training.py", "        n += batch.n_tokens", "        n += batch.inputs.size",
           ("tests/test_lm_eval.py",)),
    Mutant("resume-no-replay", "a resumed classifier run draws its batches from the start of the stream again",
           "shared/training.py", "    for _ in range(done):  # the stream", "    for _ in range(0):  # the stream",
           ("tests/test_runs.py", "-k", "interrupted and torch")),
    Mutant("lm-resume-no-replay", "a resumed LM run reads its windows from the start of the text again",
           "shared/lm_training.py", "    for _ in range(done):  # the stream", "    for _ in range(0):  # the stream",
           ("tests/test_runs.py", "-k", "carried_state and torch")),
    Mutant("state-save-not-atomic", "the run state is written in place: a kill mid-save leaves a torn file",
           "shared/runs.py", "atomic_write(folder.state_file, lambda tmp: save_file(tensors, str(tmp), metadata=meta))",
           "folder.state_file.parent.mkdir(parents=True, exist_ok=True)\n"
           "    save_file(tensors, str(folder.state_file), metadata=meta)",
           ("tests/test_runs.py", "-k", "killed_before_its_rename and torch")),
    Mutant("diverged-saves-the-bad-step", "on divergence the state is saved as step s, not the last good s - 1",
           "shared/loop.py", "where = self.save(state, s - 1)", "where = self.save(state, s)",
           ("tests/test_runs.py", "-k", "diverging and torch")),
    Mutant("guard-ignores-grad-norm", "a step with a finite loss and an infinite gradient norm counts as good",
           "shared/guard.py", "return math.isfinite(loss) and math.isfinite(grad_norm) and",
           "return math.isfinite(loss) and", ("tests/shared/test_guard.py",)),
]

COMMAND_LINE: list[Mutant] = [
    Mutant("eval-ignores-backend", "`seqbatch eval --backend jax` runs torch", CLI,
           "    backend = get_backend(a.backend)\n    with _torch_kernel(a):",
           '    backend = get_backend("torch")\n    with _torch_kernel(a):', (T_BACKEND,)),
    Mutant("predict-ignores-backend", "`seqbatch predict --backend jax` runs torch", CLI,
           "    backend = get_backend(a.backend)\n    model = _load_model(backend, ckpt, a.dtype)\n    text =",
           '    backend = get_backend("torch")\n    model = _load_model(backend, ckpt, a.dtype)\n    text =',
           (T_BACKEND,)),
    Mutant("lm-eval-ignores-backend", "`seqbatch eval --backend jax` of a language model runs torch", LM_CLI,
           "    backend = get_backend(a.backend)\n    model = _load_model(backend, ckpt, a.dtype)\n    report",
           '    backend = get_backend("torch")\n    model = _load_model(backend, ckpt, a.dtype)\n    report',
           (T_BACKEND,)),
    Mutant("generate-ignores-backend", "`seqbatch generate --backend jax` runs torch", LM_CLI,
           "    backend = get_backend(a.backend)\n    model = _load_model(backend, ckpt, a.dtype)\n    lm =",
           '    backend = get_backend("torch")\n    model = _load_model(backend, ckpt, a.dtype)\n    lm =',
           (T_BACKEND,)),
    Mutant("hidden-flag-dropped", "--hidden is ignored: the task's default width is trained", CLI,
           'hidden_size=pick["hidden"]', 'hidden_size=TASK_DEFAULTS[a.task]["hidden"]', (T_FLAGS,)),
    Mutant("layers-flag-dropped", "--layers is ignored: one layer is trained", CLI,
           'num_layers=pick["layers"]', "num_layers=1", (T_FLAGS,)),
    Mutant("dropout-flag-dropped", "--dropout is ignored for the classifier", CLI,
           'dropout=pick["dropout"], dtype=a.dtype', 'dropout=0.0, dtype=a.dtype', (T_FLAGS,)),
    Mutant("lm-dropout-flag-dropped", "--dropout is ignored for the language model (the task default is used)",
           LM_CLI, 'dropout=pick["dropout"],', 'dropout=defaults["dropout"],', (T_FLAGS,)),
    Mutant("clip-norm-flag-dropped", "--clip-norm is ignored: the task's default clipping is used",
           "shared/cli/runflags.py", 'clip_norm=pick["clip_norm"], seed=a.seed',
           'clip_norm=d.get("clip_norm"), seed=a.seed', (T_FLAGS,)),
    Mutant("seq-length-flag-dropped", "--seq-length is ignored when a language model trains", LM_CLI,
           "    seq_length = 100 if a.seq_length is None else a.seq_length\n    steps, epochs",
           "    seq_length = 100\n    steps, epochs", (T_FLAGS,)),
    Mutant("eval-dtype-ignored", "eval/predict/generate --dtype float64 still computes in the checkpoint's float32",
           "shared/cli/common.py", "cfg = ckpt.config if dtype is None else replace(ckpt.config, dtype=dtype)",
           "cfg = ckpt.config", (T_CLI, "-k", "float64_eval")),
    Mutant("lr-flag-dropped", "--lr is ignored: the task's default learning rate is used", "shared/cli/runflags.py",
           'lr=pick["lr"], momentum=a.momentum', 'lr=d["lr"], momentum=a.momentum', (T_FLAGS,)),
    Mutant("keep-best-flag-dropped", "--keep-best/--no-keep-best is ignored: the task default decides", CLI,
           'keep_best=pick["keep_best"], folder=folder', 'keep_best=TASK_DEFAULTS[a.task]["keep_best"], folder=folder',
           (T_FLAGS,)),
    Mutant("train-split-seed-ignored", "train splits the data with seed 0 whatever --seed says (the checkpoint "
           "still records --seed)", CLI, "data = load_task_data(a.task, a, a.seed)",
           "data = load_task_data(a.task, a, 0)", (T_SPLIT,)),
    Mutant("eval-split-seed-ignored", "eval re-creates the split with seed 0, not the run's", CLI,
           'seed = int(split.get("seed", 0))', "seed = 0", (T_SPLIT,)),
    Mutant("user-error-exit-1", "a user error exits 1 instead of 2", "shared/cli/__init__.py",
           'return _fail(f"seqbatch: error: {e}", 2)\n    except Diverged',
           'return _fail(f"seqbatch: error: {e}", 1)\n    except Diverged', (T_CLI,)),
    Mutant("diverged-exit-2", "a diverged run exits 2 (a user error) instead of 3", "shared/cli/__init__.py",
           'return _fail(f"seqbatch: error: {e}", EXIT_DIVERGED)', 'return _fail(f"seqbatch: error: {e}", 2)',
           (T_CLI_RUNS, "-k", "diverging")),
    Mutant("resume-accepts-another-seed", "--resume lets --seed change the run", "shared/cli/runflags.py",
           'RESUME_MAY_CHANGE = frozenset({"steps", "epochs",',
           'RESUME_MAY_CHANGE = frozenset({"seed", "steps", "epochs",',
           ("tests/test_resume_refuses_changes.py",)),
]

PARITY: list[Mutant] = [
    Mutant("parity-grad-torch-vs-torch", "the classifier grid compares torch's gradients with themselves",
           "parity/harness.py", 'compare("grad", case, n, t_grads[n], grads[n], GRAD_REL_TOL, "rel")',
           'compare("grad", case, n, t_grads[n], t_grads[n], GRAD_REL_TOL, "rel")',
           ("tests/parity/test_parity_harness.py::test_a_perturbed_parameter_is_caught_and_named",)),
    Mutant("parity-output-tol-from-grad", "logits and losses are judged against the gradient tolerance",
           "parity/harness.py", "tol = OUTPUT_ABS_TOL[cfg.dtype]", "tol = GRAD_REL_TOL",
           ("tests/parity/test_parity_harness.py::test_cli_exits_one_and_names_the_failure",)),
    Mutant("parity-lm-torch-vs-torch", "the LM check runs torch on both sides of every output comparison",
           "parity/lm.py", "_outputs(tlm, tm, batch, t_carry), _outputs(jlm, jm, batch, t_carry)",
           "_outputs(tlm, tm, batch, t_carry), _outputs(tlm, tm, batch, t_carry)",
           ("tests/parity/test_parity_lm.py::test_a_carry_bug_would_be_caught",)),
    Mutant("parity-lm-float64-at-float32-tol", "a float64 LM check is judged at the float32 output tolerance",
           "parity/lm.py", "H.OUTPUT_ABS_TOL[cfg.dtype], H.ConfigResult(cfg)",
           'H.OUTPUT_ABS_TOL["float32"], H.ConfigResult(cfg)', ("tests/parity/test_parity_lm_tolerance.py",)),
]

# The skip-gram pipeline and training loop (issue 13).
WORDS: list[Mutant] = [
    Mutant("skipgram-noise-unsmoothed", "negatives drawn from the raw counts, not count**0.75",
           "shared/skipgram_data.py", "NOISE_POWER = 0.75", "NOISE_POWER = 1.0",
           ("tests/shared/test_skipgram_data.py",)),
    Mutant("skipgram-windows-cross-documents", "context windows run on across a document's end",
           "shared/skipgram_data.py", "valid &= doc[np.clip(context, 0, n - 1)] == doc[centre]",
           "valid &= doc[np.clip(context, 0, n - 1)] >= 0", ("tests/shared/test_skipgram_data.py",)),
    Mutant("skipgram-rate-never-decays", "SGD keeps --lr for the whole run instead of decaying to --min-lr",
           "shared/skipgram_training.py", "return max(min_lr, train_cfg.lr - (train_cfg.lr - min_lr) * min(done, 1.0))",
           "return train_cfg.lr", ("tests/test_cli_skipgram.py",)),
]

STUDIES: list[Mutant] = [
    Mutant("left-padding-on-the-right", "--padding left puts the padding after the review, as right does",
           "shared/batching.py", "            tokens[i, t - len(s) :] = s", "            tokens[i, : len(s)] = s",
           ("tests/test_padding_study.py",)),
    Mutant("unmasked-reads-real-lengths", "--padding right|left still masks: the model never reads the padding",
           "shared/batching.py", "        lengths = np.full(len(seqs), t, dtype=np.int32)",
           "        lengths = lengths", ("tests/test_padding_study.py",)),
    Mutant("class-weights-squared", "--class-weights sqrt squares the weights instead of taking their roots",
           "shared/imbalance.py", "weights = np.sqrt(weights)", "weights = weights**2", ("tests/test_imbalance.py",)),
    Mutant("uniform-sampler-draws-examples", "--sampler uniform draws examples uniformly (the classes as they come)",
           "shared/batching.py", "k = self.rng.integers(0, len(self.classes), self.batch_size)",
           "k = self.labels[self.rng.integers(0, self.n, self.batch_size)]", ("tests/test_imbalance.py",)),
    Mutant("ranks-share-one-class-order", "the distributed sampler deals in sampled order, not by class",
           "shared/distributed.py", 'ordered = index[np.argsort(labels[index], kind="stable")]', "ordered = index",
           ("tests/shared/test_distributed.py",)),
    Mutant("evaluation-keeps-one-rank", "data-parallel evaluation puts the ranks' logits back in the wrong rows",
           "shared/distributed.py", "            out[r :: self.size] = part",
           "            out[r * len(part) : (r + 1) * len(part)] = part",
           ("tests/shared/test_distributed.py",)),
]

MUTANTS: list[Mutant] = [*DATA, *TRAINING, *COMMAND_LINE, *PARITY, *WORDS, *STUDIES]
