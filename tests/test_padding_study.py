"""The padding study's unmasked layouts (issue 14, study 2): `--padding right` pads every review
to --max-len and the model reads the padding; `--padding left` puts it in front (the lesson's
recipe); `--padding masked` is the default model. What a user relies on: the batch is laid out as
described, the layout travels in the checkpoint (eval and predict read the same way), the model
really reads the padding, and the combinations that mean nothing are refused before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from shared.backend import get_backend
from shared.batching import pad
from shared.cli import main
from shared.config import ModelConfig
from shared.errors import SeqbatchError
from shared.text import TextConfig

SEQS = [np.array([5, 6, 7], np.int32), np.array([8], np.int32)]
TINY = ["--task", "imdb", "--max-train", "200", "--max-test", "60", "--hidden", "6", "--embed-dim", "6",
        "--max-len", "24", "--epochs", "1", "--no-progress"]


def test_left_padding_without_a_mask_puts_the_review_last_and_reads_everything() -> None:
    b = pad(SEQS, [0, 1], time=6, mask=False, side="left")
    np.testing.assert_array_equal(b.tokens, [[0, 0, 0, 5, 6, 7], [0, 0, 0, 0, 0, 8]])
    np.testing.assert_array_equal(b.lengths, [6, 6])


def test_right_padding_without_a_mask_reads_the_padding_after_the_review() -> None:
    b = pad(SEQS, [0, 1], time=6, mask=False)
    np.testing.assert_array_equal(b.tokens, [[5, 6, 7, 0, 0, 0], [8, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(b.lengths, [6, 6])
    masked = pad(SEQS, [0, 1], time=6)
    np.testing.assert_array_equal(masked.tokens, b.tokens)
    np.testing.assert_array_equal(masked.lengths, [3, 1])


def test_left_padding_with_a_mask_is_refused() -> None:
    with pytest.raises(SeqbatchError, match="left padding needs mask=False"):
        pad(SEQS, [0, 1], mask=True, side="left")
    with pytest.raises(SeqbatchError, match="--padding left, has mask false"):
        TextConfig(pad_side="left")
    with pytest.raises(SeqbatchError, match="give a max_len"):
        TextConfig(mask=False, max_len=None)


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_the_three_layouts_give_three_models(name: str) -> None:
    """Same weights, same reviews: masked, right-unmasked and left-unmasked logits all differ (the
    padding is read, and where it sits matters); the masked logits ignore the batch width."""
    b = get_backend(name)
    cfg = ModelConfig(10, 2, cell="lstm", hidden_size=5, embed_dim=4)
    model = b.init(cfg, 0)
    masked = b.logits(model, pad(SEQS, [0, 1], time=6))
    right = b.logits(model, pad(SEQS, [0, 1], time=6, mask=False))
    left = b.logits(model, pad(SEQS, [0, 1], time=6, mask=False, side="left"))
    assert np.abs(masked - right).max() > 1e-4 and np.abs(right - left).max() > 1e-4
    np.testing.assert_allclose(b.logits(model, pad(SEQS, [0, 1], time=12)), masked, atol=1e-6)
    # The unmasked model is the masked one reading the padding as tokens: lengths = width.
    as_tokens = pad([np.array([0, 0, 0, 5, 6, 7], np.int32), np.array([0, 0, 0, 0, 0, 8], np.int32)], [0, 1])
    np.testing.assert_allclose(b.logits(model, as_tokens), left, atol=1e-6)


@pytest.fixture(scope="module")
def left_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("left") / "run"
    assert main(["train", *TINY, "--padding", "left", "--out", str(out)]) == 0
    return out


def test_the_layout_travels_in_config_and_checkpoint(left_run: Path) -> None:
    config = json.loads((left_run / "config.json").read_text())
    assert config["text"]["mask"] is False and config["text"]["pad_side"] == "left"
    with safe_open(str(left_run / "model.safetensors"), framework="numpy") as f:
        text = json.loads(f.metadata()["seqbatch.text"])
    assert text["mask"] is False and text["pad_side"] == "left" and text["max_len"] == 24


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_eval_on_either_backend_reproduces_the_unmasked_runs_test_figure(
        left_run: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = main(["eval", "--checkpoint", str(left_run / "model.safetensors"), "--task", "imdb", "--backend", name])
    assert code == 0
    got = json.loads(capsys.readouterr().out)
    last = json.loads((left_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert got["top1"] == last["top1"] and got["loss"] == pytest.approx(last["loss"], abs=1e-5)


def test_predict_reads_an_unmasked_checkpoint_the_way_it_was_trained(left_run: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """predict's probabilities = the model's on the left-padded, full-width batch (not the masked one)."""
    from shared import checkpoint
    from shared.text import text_tokens

    review = "a wonderful film with a terrible ending"
    capsys.readouterr()
    assert main(["predict", "--task", "imdb", "--checkpoint", str(left_run / "model.safetensors"), "--backend",
                 "torch", "--json", "--top", "2", review]) == 0
    got = dict(json.loads(capsys.readouterr().out)["top"])
    ckpt = checkpoint.load(left_run / "model.safetensors")
    b = get_backend("torch")
    model = b.from_params(ckpt.config, ckpt.params)
    seq = ckpt.vocab.encode(text_tokens(review, ckpt.text))
    logits = b.logits(model, pad([seq], [0], time=24, mask=False, side="left"))[0]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    assert [round(float(x), 4) for x in p] == [got[label] for label in ckpt.labels]


@pytest.mark.parametrize("argv, message", [
    (["--padding", "right", "--max-len", "0"], "give a max_len"),
    (["--padding", "left", "--max-len", "0"], "give a max_len"),
])
def test_meaningless_combinations_fail_before_the_run_folder(argv: list[str], message: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", *TINY, *argv, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("seqbatch: error:") and message in err[-1]
    assert not (tmp_path / "r").exists()


def test_names_refuse_the_text_layout_flags(tiny_names_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--data", str(tiny_names_dir), "--padding", "left", "--steps", "2", "--no-progress",
                 "--out", str(tmp_path / "r")])
    assert code == 2 and "--padding" in capsys.readouterr().err


@pytest.mark.parametrize("padding, mask, side", [("masked", True, "right"), ("right", False, "right"),
                                                 ("left", False, "left")])
def test_each_padding_flag_value_reaches_the_text_config(padding: str, mask: bool, side: str) -> None:
    from shared.cli import build_parser
    from shared.cli.textflags import text_config

    a = build_parser().parse_args(["train", "--task", "imdb", "--padding", padding])
    cfg = text_config(a)
    assert (cfg.mask, cfg.pad_side) == (mask, side)
