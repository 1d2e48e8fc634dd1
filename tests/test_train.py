"""pfx train-dpo end to end on tiny local models, plus its batching, packing and guards."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import FIXTURES, parse_jsonl

torch = pytest.importorskip("torch")

PAIRS = str(FIXTURES / "train" / "pairs.jsonl")
UNPAIRED = str(FIXTURES / "train" / "unpaired.jsonl")
LISTS = str(FIXTURES / "train" / "lists.jsonl")
METRIC_KEYS = {"step", "epoch", "loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
               "rewards/ties", "logps/chosen", "logps/rejected", "learning_rate", "tokens_per_second"}


def train_args(model: str, outdir: Path, *extra: str) -> list[str]:
    return ["train-dpo", "--model", model, "--lr", "1e-3", "--batch-size", "4", "--max-steps", "2",
            "--ref-cache", str(outdir.parent / "ref-cache"), "-o", str(outdir), *extra]


def load_weights(outdir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(outdir / "model.safetensors"))


# -- batching and packing ----------------------------------------------------------------


def test_epoch_batches_cover_every_example():
    from pfx.train.batching import epoch_batches

    lengths = [(i * 37) % 101 for i in range(50)]
    batches = epoch_batches(lengths, 8, seed=3, epoch=0)
    flat = sorted(i for batch in batches for i in batch)
    assert flat == list(range(50))
    assert all(len(batch) == 8 for batch in batches[:-1])
    assert len(batches[-1]) == 2


def test_epoch_batches_seeded_per_epoch():
    from pfx.train.batching import epoch_batches

    lengths = list(range(40))
    assert epoch_batches(lengths, 4, 1, 0) == epoch_batches(lengths, 4, 1, 0)
    assert epoch_batches(lengths, 4, 1, 0) != epoch_batches(lengths, 4, 1, 1)


def test_epoch_batches_group_lengths():
    from pfx.train.batching import epoch_batches

    lengths = [(i * 7919) % 1000 for i in range(256)]
    batches = epoch_batches(lengths, 8, seed=0, epoch=0)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 100  # unsorted batches of 8 from 0..999 spread about 780


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
@pytest.mark.parametrize("layout", ["shared-prompt", "packed", "padded"])
def test_layout_logps_match_model_core(tiny_model, arch, layout):
    from pfx.model.config import ModelOptions
    from pfx.model.loading import load_causal_lm
    from pfx.model.logps import pair_logps
    from pfx.model.tokenize import Encoder
    from pfx.train.forward import layout_is_exact, make_batch, sequence_logps

    model, tokenizer = load_causal_lm(tiny_model(arch), ModelOptions(device="cpu"))
    encoder = Encoder(tokenizer, 64)
    texts = [("Name a fruit.", " Apple.", " Carrot, I think."),
             ("Why is the sky blue?", " Air scatters blue light more than red light.", " The ocean."),
             ("Hi", " Bonjour. Salut!", " Hello."), ("Describe a kettle. It boils water and more", " It boils.", " A fish.")]
    pairs = [encoder.encode_pair(*text) for text in texts]
    units = [(pair.prompt_ids, [pair.chosen_ids, pair.rejected_ids]) for pair in pairs]
    batch = make_batch(units, tokenizer.pad_token_id, layout)
    if layout != "padded":
        assert batch.input_ids.shape[0] < 2 * len(pairs)
    with torch.no_grad():
        sums, counts = sequence_logps(model, batch)
        expected = [side for result in pair_logps(model, pairs, 4) for side in result]
    torch.testing.assert_close(sums, torch.tensor([e.sum for e in expected]), atol=1e-4, rtol=1e-5)
    assert counts.tolist() == [e.count for e in expected]
    assert layout_is_exact(model, units, tokenizer.pad_token_id, layout)


def test_shared_prompt_runs_fewer_tokens():
    from pfx.train.forward import make_batch

    units = [([1] * 50, [[2] * 5, [3] * 7])]
    assert make_batch(units, 0, "shared-prompt").tokens == 62
    assert make_batch(units, 0, "packed").tokens == 112


def test_micro_batch_all_masked_answer_rejected(tiny_model):
    from pfx.errors import DataError
    from pfx.losses import get_loss
    from pfx.losses.base import LossSettings, LossState
    from pfx.model.config import ModelOptions
    from pfx.model.loading import load_causal_lm
    from pfx.train.data import Example, Sequence
    from pfx.train.loop import micro_batch_loss

    model, _ = load_causal_lm(tiny_model("gpt2"), ModelOptions(device="cpu"))
    # An empty prompt leaves a one-token answer nothing to be predicted from: no scored token.
    examples = [Example("data.jsonl", 7, [Sequence([], [5]), Sequence([], [4, 6])])]
    with pytest.raises(DataError, match="data.jsonl:7"):
        micro_batch_loss(model, get_loss("dpo"), LossSettings(), LossState(), examples, [0],
                         torch.zeros(2), pad_id=0, layout="shared-prompt")


# -- the command ---------------------------------------------------------------------------


def test_train_dpo_writes_model_dir(invoke, tiny_model, tmp_path):
    outdir = tmp_path / "policy"
    result = invoke(train_args(tiny_model("llama"), outdir, PAIRS))
    assert result.exit_code == 0, result
    metrics = result.records
    assert [m["step"] for m in metrics] == [1, 2]
    assert METRIC_KEYS <= set(metrics[0])
    # Step 1: the policy is the reference, so the loss is log 2 and every pair is a tie, not a failure.
    assert metrics[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert metrics[0]["rewards/ties"] == 1.0
    assert metrics[0]["rewards/accuracies"] == 0.0
    assert metrics[1]["rewards/ties"] < 1.0
    assert "trained on 24" in result.stderr

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(outdir))
    tokenizer = AutoTokenizer.from_pretrained(str(outdir))
    assert tokenizer.chat_template
    assert model.config.model_type == "llama"
    config = json.loads((outdir / "train_config.json").read_text())
    assert config["loss"] == "dpo"
    assert config["loss_settings"]["beta"] == 0.1
    assert config["summary"]["steps"] == 2


def test_train_dpo_changes_weights(invoke, tiny_model, tmp_path):
    from safetensors.torch import load_file

    result = invoke(train_args(tiny_model("llama"), tmp_path / "policy", PAIRS))
    assert result.exit_code == 0, result
    before = load_file(str(Path(tiny_model("llama")) / "model.safetensors"))
    after = load_weights(tmp_path / "policy")
    assert any(not torch.equal(before[name], after[name]) for name in after)


def test_train_dpo_metrics_file(invoke, tiny_model, tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    result = invoke(train_args(tiny_model("llama"), tmp_path / "policy", "--metrics", str(metrics), PAIRS))
    assert result.exit_code == 0, result
    assert result.stdout == ""
    assert [m["step"] for m in parse_jsonl(metrics.read_text())] == [1, 2]


def test_train_dpo_reference_cache_reused(invoke, tiny_model, tmp_path):
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert invoke(train_args(tiny_model("llama"), tmp_path / "a", "--summary", str(first), PAIRS)).exit_code == 0
    assert invoke(train_args(tiny_model("llama"), tmp_path / "b", "--summary", str(second), PAIRS)).exit_code == 0
    assert json.loads(first.read_text())["reference_cached"] is False
    assert json.loads(second.read_text())["reference_cached"] is True
    # Another --max-length changes the token ids, so the cache key.
    third = tmp_path / "third.json"
    result = invoke(train_args(tiny_model("llama"), tmp_path / "c", "--max-length", "12", "--summary", str(third), PAIRS))
    assert result.exit_code == 0, result
    assert json.loads(third.read_text())["reference_cached"] is False
    assert torch.equal(load_weights(tmp_path / "a")["lm_head.weight"], load_weights(tmp_path / "b")["lm_head.weight"])


@pytest.mark.parametrize("loss,data", [
    ("cdpo", PAIRS), ("rdpo", PAIRS), ("ipo", PAIRS), ("hinge", PAIRS), ("ln-dpo", PAIRS), ("bco-pair", PAIRS),
    ("noise-aware", PAIRS), ("simpo", PAIRS), ("orpo", PAIRS), ("kto", UNPAIRED), ("bco", UNPAIRED),
    ("lipo", LISTS), ("pro", LISTS),
])
def test_train_every_loss_runs(invoke, tiny_model, tmp_path, loss, data):
    extra = ["--smoothing", "0.1"] if loss in ("cdpo", "rdpo") else []
    result = invoke(train_args(tiny_model("llama"), tmp_path / "policy", "--loss", loss, *extra, data))
    assert result.exit_code == 0, result
    for line in result.records:
        assert math.isfinite(line["loss"]), line


def test_train_sft_weight_adds_nll(invoke, tiny_model, tmp_path):
    plain = invoke(train_args(tiny_model("llama"), tmp_path / "a", "--max-steps", "1", PAIRS)).records[0]
    weighted = invoke(train_args(tiny_model("llama"), tmp_path / "b", "--max-steps", "1", "--sft-weight", "1",
                                 PAIRS)).records[0]
    # At step 1 the DPO part is log 2; the added term is the per-token NLL of the chosen answers (about log 512).
    assert weighted["loss"] - plain["loss"] > 3.0


def test_train_confidence_as_smoothing_needs_field(invoke, tiny_model, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "Name a fruit.", "chosen": " Apple.", "rejected": " Carrot."}\n')
    result = invoke(train_args(tiny_model("llama"), tmp_path / "policy", "--loss", "cdpo",
                               "--confidence-as-smoothing", str(data)))
    assert result.exit_code == 65
    assert f"{data}:1: missing field 'confidence'" in result.stderr


def test_train_confidence_as_smoothing_runs(invoke, tiny_model, tmp_path):
    result = invoke(train_args(tiny_model("llama"), tmp_path / "policy", "--loss", "cdpo", "--confidence-as-smoothing",
                               PAIRS))
    assert result.exit_code == 0, result


def test_train_lora_reference_is_base(invoke, tiny_model, tmp_path):
    outdir = tmp_path / "lora"
    result = invoke(train_args(tiny_model("llama"), outdir, "--lr", "1e-2", "--lora-r", "4", "--lora-targets",
                               "q_proj,v_proj", PAIRS))
    assert result.exit_code == 0, result
    assert result.records[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    weights = load_weights(outdir)
    assert not any("lora" in name for name in weights)  # adapters are merged into a plain model
    from safetensors.torch import load_file

    base = load_file(str(Path(tiny_model("llama")) / "model.safetensors"))
    changed = {name for name in weights if not torch.equal(base[name], weights[name])}
    assert changed and all("q_proj" in name or "v_proj" in name for name in changed)


def test_train_kto_pairs_rejected_with_loss_hint(invoke, tiny_model, tmp_path):
    result = invoke(train_args(tiny_model("llama"), tmp_path / "policy", "--loss", "kto", PAIRS))
    assert result.exit_code == 65
    assert "--loss kto trains on unpaired records" in result.stderr


def test_train_empty_after_rejects(invoke, tiny_model, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    result = invoke(train_args(tiny_model("llama"), tmp_path / "policy", "--loss", "kto", "--on-error", "skip",
                               "--rejects", str(rejects), PAIRS))
    assert result.exit_code == 65
    assert "no record to train on: read 24, rejected 24" in result.stderr
    assert len(parse_jsonl(rejects.read_text())) == 24


def test_train_long_prompt_keeps_answer_tokens(invoke, tiny_model, tmp_path):
    # Max length 16 with a 30-token prompt: the prompt is cut, both answers keep their tokens,
    # and the loss at step 1 is log 2, never a silent 0.0.
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({
        "prompt": "You are a careful assistant. Read the following question slowly, think about every word, "
                  "consider the units, and then answer briefly: how many legs does a spider have?",
        "chosen": " Eight.", "rejected": " Six."}) + "\n")
    result = invoke(train_args(tiny_model("llama"), tmp_path / "policy", "--max-length", "16", "--max-steps", "1",
                               "--batch-size", "1", str(data)))
    assert result.exit_code == 0, result
    assert result.records[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert result.records[0]["logps/chosen"] < 0
    assert "prompt truncated: 1" in result.stderr


def test_train_long_answer_cut_to_own_budget(invoke, tiny_model, tmp_path):
    # Only the long rejected answer is cut; the short chosen answer stays whole, and the loss stays finite.
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({
        "prompt": "Name a fruit.", "chosen": "Apple.",
        "rejected": "Well, there are many fruits one could name, such as apples, pears, plums, cherries, grapes, "
                    "figs, dates, lemons, limes, oranges, mangoes and many more besides these."}) + "\n")
    result = invoke(train_args(tiny_model("llama"), tmp_path / "policy", "--loss", "simpo", "--max-length", "16",
                               "--batch-size", "1", str(data)))
    assert result.exit_code == 0, result
    assert "rejected truncated: 1" in result.stderr
    assert "chosen truncated" not in result.stderr
    assert all(math.isfinite(line["loss"]) for line in result.records)


def test_train_nan_loss_names_records(invoke, tiny_model, tmp_path):
    result = invoke(train_args(tiny_model("llama"), tmp_path / "policy", "--lr", "1e12", "--max-grad-norm", "0",
                               "--max-steps", "6", PAIRS))
    assert result.exit_code == 1
    assert "non-finite loss for records" in result.stderr
    assert "pairs.jsonl:" in result.stderr
    assert not (tmp_path / "policy" / "model.safetensors").exists()


@pytest.mark.parametrize("args,message", [
    (["--smoothing", "0.1"], "--smoothing applies to cdpo, rdpo"),
    (["--loss", "rdpo", "--smoothing", "0.5"], "outside [0, 0.5)"),
    (["--loss", "simpo", "--ref", "x"], "uses no reference model"),
    (["--confidence-as-smoothing"], "--confidence-as-smoothing applies to"),
    (["--lora-targets", "q_proj"], "need --lora-r"),
    (["--bco-embedding-model", "m"], "applies to --loss bco"),
    (["--resume"], "no checkpoint"),
])
def test_train_usage_errors(invoke, tmp_path, args, message):
    result = invoke(["train-dpo", "--model", "unused", "-o", str(tmp_path / "out"), *args, PAIRS])
    assert result.exit_code == 2
    assert message in result.stderr


def test_train_refuses_nonempty_outdir(invoke, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    result = invoke(["train-dpo", "--model", "unused", "-o", str(tmp_path / "out"), PAIRS])
    assert result.exit_code == 2
    assert "is not empty" in result.stderr


def test_train_resume_matches_uninterrupted(invoke, tiny_model, tmp_path):
    # A run of 4 steps keeps its step-2 checkpoint; resuming a copy of it must give the same weights.
    # bco carries state (its reward shift) that the checkpoint must restore.
    import shutil

    full = tmp_path / "full"
    args = ["--loss", "bco", "--max-steps", "4", "--save-every", "2", UNPAIRED]
    assert invoke(train_args(tiny_model("llama"), full, *args)).exit_code == 0
    assert (full / "checkpoints" / "step-00000002").is_dir()
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(full / "checkpoints", resumed / "checkpoints")
    result = invoke(train_args(tiny_model("llama"), resumed, "--resume", *args))
    assert result.exit_code == 0, result
    assert [line["step"] for line in result.records] == [3, 4]
    expected, actual = load_weights(full), load_weights(resumed)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


def test_train_resume_other_options_refused(invoke, tiny_model, tmp_path):
    import shutil

    full = tmp_path / "full"
    assert invoke(train_args(tiny_model("llama"), full, "--max-steps", "4", "--save-every", "2", PAIRS)).exit_code == 0
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(full / "checkpoints", resumed / "checkpoints")
    result = invoke(train_args(tiny_model("llama"), resumed, "--resume", "--beta", "0.5", "--max-steps", "4", PAIRS))
    assert result.exit_code == 1
    assert "other data or options" in result.stderr


# -- BCO's underlying distribution matching --------------------------------------------------


def test_density_ratio_follows_prompt_distribution():
    from pfx.train.udm import MAX_RATIO, MIN_RATIO, density_ratios, fit_classifier

    generator = torch.Generator().manual_seed(0)
    desirable = torch.randn(64, 4, generator=generator) + torch.tensor([2.0, 0, 0, 0])
    undesirable = torch.randn(64, 4, generator=generator) - torch.tensor([2.0, 0, 0, 0])
    classifier = fit_classifier(desirable, undesirable)
    ratios = density_ratios(torch.tensor([[3.0, 0, 0, 0], [0.0, 0, 0, 0], [-3.0, 0, 0, 0]]), classifier)
    # Like the desirable prompts: the upper clamp. In between: about 1. Like the undesirable ones: the lower clamp.
    assert ratios[0] == pytest.approx(MAX_RATIO)
    assert 0.6 < ratios[1] < 1.6
    assert ratios[2] == pytest.approx(MIN_RATIO)


def test_density_ratio_needs_both_classes():
    from pfx.train.udm import undesirable_weights

    with pytest.raises(ValueError, match="desirable and undesirable"):
        undesirable_weights(None, None, ["a", "b"], [True, True], 8, 0)


def test_train_bco_distribution_matching(invoke, tiny_model, tmp_path):
    outdir = tmp_path / "policy"
    result = invoke(train_args(tiny_model("llama"), outdir, "--loss", "bco", "--bco-embedding-model",
                               tiny_model("gpt2"), "--bco-prompt-sample", "8", UNPAIRED))
    assert result.exit_code == 0, result
    config = json.loads((outdir / "train_config.json").read_text())
    assert config["bco_embedding_model"] == tiny_model("gpt2")
    assert all(math.isfinite(line["loss"]) for line in result.records)


def test_bco_weights_reach_the_loss():
    from pfx.losses import get_loss
    from pfx.losses.base import LossSettings, LossState
    from pfx.train.data import Example, Sequence
    from pfx.train.loop import _loss_inputs

    examples = [Example("u.jsonl", 1, [Sequence([1], [2])], label=True, weight=1.0),
                Example("u.jsonl", 2, [Sequence([1], [3])], label=False, weight=4.0)]
    batch, _, _ = _loss_inputs(get_loss("bco"), examples, torch.tensor([-1.0, -2.0]), torch.tensor([1, 1]),
                               torch.tensor([-1.0, -2.0]), [0, 1])
    assert batch.weights.tolist() == [1.0, 4.0]
    # Rewards 0 and delta 0: the undesirable loss is 4 * log 2.
    output = get_loss("bco").load()(batch, LossSettings(), LossState())
    assert output.losses.tolist() == pytest.approx([math.log(2), 4 * math.log(2)])


def test_train_grad_accum_matches_larger_batch(invoke, tiny_model, tmp_path):
    # Two micro-batches of 2 per step compute the gradient of one batch of 4.
    big = invoke(train_args(tiny_model("llama"), tmp_path / "big", "--batch-size", "4", PAIRS))
    small = invoke(train_args(tiny_model("llama"), tmp_path / "small", "--batch-size", "2", "--grad-accum", "2", PAIRS))
    assert big.exit_code == 0, big
    assert small.exit_code == 0, small
    for first, second in zip(big.records, small.records):
        assert second["loss"] == pytest.approx(first["loss"], abs=1e-6)
        assert second["examples"] == first["examples"] == 4
    expected, actual = load_weights(tmp_path / "big"), load_weights(tmp_path / "small")
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=1e-5, rtol=0)


def test_micro_batch_without_scored_tokens(tiny_model):
    from pfx.errors import DataError
    from pfx.losses import get_loss
    from pfx.losses.base import LossSettings, LossState
    from pfx.model.config import ModelOptions
    from pfx.model.loading import load_causal_lm
    from pfx.train.data import Example, Sequence
    from pfx.train.loop import micro_batch_loss

    model, _ = load_causal_lm(tiny_model("gpt2"), ModelOptions(device="cpu"))
    examples = [Example("data.jsonl", 3, [Sequence([], [5]), Sequence([], [4])])]
    with pytest.raises(DataError, match="data.jsonl:3"):
        micro_batch_loss(model, get_loss("dpo"), LossSettings(), LossState(), examples, [0],
                         torch.zeros(2), pad_id=0, layout="packed")
