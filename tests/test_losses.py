"""Loss math on three-element tensors with hand-derived values, and a cross-check against TRL.

softplus(x) = log(1 + e^x) = -log sigmoid(-x); values used below:
softplus(0) = log 2 = 0.693147, softplus(-1) = 0.313262, softplus(1) = 1.313262,
softplus(-2) = 0.126928, softplus(-10) = 0.0000454, softplus(10) = 10.0000454.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from pfx.losses import LOSSES, get_loss, loss_help  # noqa: E402
from pfx.losses.base import ListBatch, LossSettings, LossState, PairBatch, UnpairedBatch  # noqa: E402
from pfx.losses.listwise import lipo, pro  # noqa: E402
from pfx.losses.noise_aware import margin_threshold, noise_aware  # noqa: E402
from pfx.losses.unpaired import bco, kto  # noqa: E402

LOG2 = math.log(2)


def tensor(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def pairs(chosen_ratio, rejected_ratio, chosen_counts=(1, 1, 1), rejected_counts=(1, 1, 1), smoothing=None) -> PairBatch:
    """A PairBatch whose reference log-probs are 0, so the policy log-probs are the log-ratios."""
    return PairBatch(
        chosen_logps=tensor(*chosen_ratio),
        rejected_logps=tensor(*rejected_ratio),
        chosen_counts=tensor(*chosen_counts),
        rejected_counts=tensor(*rejected_counts),
        ref_chosen_logps=torch.zeros(3, dtype=torch.float64),
        ref_rejected_logps=torch.zeros(3, dtype=torch.float64),
        smoothing=smoothing,
    )


def close(actual: torch.Tensor, *expected: float) -> None:
    torch.testing.assert_close(actual, tensor(*expected), atol=1e-6, rtol=0)


# h = rho(chosen) - rho(rejected) = [0, 10, -10]; with beta 0.1, beta*h = [0, 1, -1].
MARGINS = pairs((-1, 4, -6), (-1, -6, 4))


def test_dpo_hand_values():
    out = get_loss("dpo").load()(MARGINS, LossSettings(beta=0.1))
    close(out.losses, LOG2, 0.313262, 1.313262)
    close(out.chosen_rewards, -0.1, 0.4, -0.6)
    close(out.rejected_rewards, -0.1, -0.6, 0.4)
    assert not out.chosen_rewards.requires_grad


def test_cdpo_hand_values():
    # 0.9*softplus(-bh) + 0.1*softplus(bh): bh=1 -> 0.9*0.313262 + 0.1*1.313262 = 0.413262
    out = get_loss("cdpo").load()(MARGINS, LossSettings(beta=0.1, smoothing=0.1))
    close(out.losses, LOG2, 0.413262, 1.213262)


def test_cdpo_per_pair_smoothing():
    # Smoothing 0 on the second pair turns it into DPO; 0.1 elsewhere.
    batch = pairs((-1, 4, -6), (-1, -6, 4), smoothing=tensor(0.1, 0.0, 0.1))
    out = get_loss("cdpo").load()(batch, LossSettings(beta=0.1, smoothing=0.4))
    close(out.losses, LOG2, 0.313262, 1.213262)


def test_rdpo_hand_values():
    # [0.9*softplus(-bh) - 0.1*softplus(bh)] / 0.8: bh=1 -> (0.281936 - 0.131326)/0.8 = 0.188262
    out = get_loss("rdpo").load()(MARGINS, LossSettings(beta=0.1, smoothing=0.1))
    close(out.losses, LOG2, 0.188262, 1.438262)


def test_rdpo_equals_dpo_without_flips():
    settings = LossSettings(beta=0.1, smoothing=0.0)
    torch.testing.assert_close(get_loss("rdpo").load()(MARGINS, settings).losses,
                               get_loss("dpo").load()(MARGINS, settings).losses)


def test_ipo_hand_values():
    # Token-averaged margins [2/1 - 0, 4/2 - 0, 0 - 0] = [2, 2, 0]; target 1/(2*0.1) = 5.
    batch = pairs((2, 4, 0), (0, 0, 0), chosen_counts=(1, 2, 1))
    out = get_loss("ipo").load()(batch, LossSettings(beta=0.1))
    close(out.losses, 9.0, 9.0, 25.0)


def test_hinge_hand_values():
    # beta*h = [0, 0.5, 2] -> relu(1 - beta*h) = [1, 0.5, 0]
    batch = pairs((0, 5, 20), (0, 0, 0))
    out = get_loss("hinge").load()(batch, LossSettings(beta=0.1))
    close(out.losses, 1.0, 0.5, 0.0)


def test_ln_dpo_hand_values():
    # Per-token margins [2/1 - 0/1, 4/2 - 2/1, 0/1 - 2/2] = [2, 0, -1] with beta 1.
    batch = pairs((2, 4, 0), (0, 2, 2), chosen_counts=(1, 2, 1), rejected_counts=(1, 1, 2))
    out = get_loss("ln-dpo").load()(batch, LossSettings(beta=1.0))
    close(out.losses, 0.126928, LOG2, 1.313262)


def test_bco_pair_hand_values():
    # softplus(-beta*rho_w) + softplus(beta*rho_l) with beta*rho_w = [0, 1, -1], beta*rho_l = [0, -1, 1].
    batch = pairs((0, 10, -10), (0, -10, 10))
    out = get_loss("bco-pair").load()(batch, LossSettings(beta=0.1))
    close(out.losses, 2 * LOG2, 0.626523, 2.626523)


def test_noise_aware_dpo_before_history():
    # Fewer than 50 recorded margins: every pair counts as confident, so the loss is DPO.
    state = LossState(progress=0.9)
    out = noise_aware(MARGINS, LossSettings(beta=0.1), state)
    close(out.losses, LOG2, 0.313262, 1.313262)
    assert list(state.margin_history) == [0.0]


def test_noise_aware_smooths_low_margins():
    # History 0..49: tau = (m[5] + m[6]) / 2 = 5.5. beta*h = [0, 10, -10] -> confident = [0, 1, 0].
    # Unconfident pairs get 0.9*softplus(-bh) + 0.1*softplus(bh): bh=-10 -> 0.9*10.0000454 + 0.1*0.0000454 = 9.0000454.
    state = LossState(progress=0.5)
    state.margin_history.extend(float(i) for i in range(50))
    out = noise_aware(MARGINS, LossSettings(beta=1.0, noise_alpha=0.1), state)
    close(out.losses, LOG2, 0.0000454, 9.0000454)


def test_noise_aware_no_smoothing_in_warmup():
    state = LossState(progress=0.1)
    state.margin_history.extend(float(i) for i in range(50))
    out = noise_aware(MARGINS, LossSettings(beta=1.0, noise_alpha=0.1, noise_warmup=0.2), state)
    close(out.losses, LOG2, 0.0000454, 10.0000454)


def test_margin_threshold_quantile():
    assert margin_threshold([float(i) for i in range(49)], 0.1) == float("-inf")
    assert margin_threshold([float(i) for i in reversed(range(50))], 0.1) == 5.5


def test_simpo_hand_values():
    # Average log-probs w = [-1, -1, -1], l = [-1.5, -1.5, -1]; 2*(w - l) - 1.6 = [-0.6, -0.6, -1.6].
    batch = pairs((-1, -2, -3), (-1.5, -3, -1), chosen_counts=(1, 2, 3), rejected_counts=(1, 2, 1))
    out = get_loss("simpo").load()(batch, LossSettings(beta=2.0, gamma=1.6))
    close(out.losses, 1.037488, 1.037488, 1.783901)
    close(out.chosen_rewards, -2.0, -2.0, -2.0)


def test_orpo_hand_values():
    # p_w, p_l = (0.5, 0.25): odds 1 and 1/3, log sigmoid(log 3) = log 0.75, so loss = log 2 + 0.1*log(4/3).
    # (0.5, 0.5): log 2 + 0.1*log 2. (0.25, 0.5): log 4 + 0.1*log 4.
    batch = pairs((math.log(0.5), math.log(0.5), math.log(0.25)), (math.log(0.25), math.log(0.5), math.log(0.5)))
    out = get_loss("orpo").load()(batch, LossSettings(beta=0.1))
    close(out.losses, 0.721915, 0.762462, 1.524924)


def unpaired(logratios, labels, kl_ratios) -> UnpairedBatch:
    return UnpairedBatch(
        logps=tensor(*logratios),
        counts=tensor(1, 1, 1),
        labels=torch.tensor(labels),
        ref_logps=torch.zeros(3, dtype=torch.float64),
        kl_logps=tensor(*kl_ratios),
        ref_kl_logps=torch.zeros(3, dtype=torch.float64),
    )


def test_kto_hand_values():
    # z0 = mean([1, 2, 3]) = 2. rho = [7, -3, 2]: 1 - sigmoid(0.5) = 0.377541; undesirable weight 2 doubles it.
    batch = unpaired((7, -3, 2), [True, False, True], (1, 2, 3))
    out = kto(batch, LossSettings(beta=0.1, undesirable_weight=2.0))
    close(out.losses, 0.377541, 0.755081, 0.5)
    torch.testing.assert_close(out.chosen_rewards, tensor(0.7, 0.2))
    torch.testing.assert_close(out.rejected_rewards, tensor(-0.3))


def test_kto_kl_clamped_at_zero():
    # Mean mismatched log-ratio -2 is clamped to z0 = 0: 1 - sigmoid(0.1 * 0.3) = 0.492501.
    batch = unpaired((0.3, 0.3, 0.3), [True, True, True], (-1, -2, -3))
    out = kto(batch, LossSettings(beta=0.1))
    close(out.losses, 0.492501, 0.492501, 0.492501)


def test_bco_running_shift():
    # Rewards [1, -1, 0] -> delta = 0: softplus(-1), softplus(-1) (undesirable: softplus(r - delta)), log 2.
    state = LossState()
    out = bco(unpaired((1, -1, 0), [True, False, True], (0, 0, 0)), LossSettings(beta=1.0), state)
    close(out.losses, 0.313262, 0.313262, LOG2)
    # Then rewards [3, 3, 3]: delta = (0 + 9) / 6 = 1.5; desirable softplus(-1.5) = 0.201413.
    out = bco(unpaired((3, 3, 3), [True, True, True], (0, 0, 0)), LossSettings(beta=1.0), state)
    close(out.losses, 0.201413, 0.201413, 0.201413)
    assert state.reward_shift.mean == 1.5


def test_loss_state_round_trip():
    state = LossState(progress=0.25)
    state.reward_shift.update(tensor(1.0, 2.0))
    state.margin_history.extend([0.5, 1.5])
    restored = LossState()
    restored.load_state_dict(state.state_dict())
    assert restored.reward_shift.mean == 1.5
    assert restored.reward_shift.count == 2
    assert list(restored.margin_history) == [0.5, 1.5]
    assert restored.progress == 0.25


def listwise(logratios, scores, mask=None, counts=None) -> ListBatch:
    logps = torch.tensor(logratios, dtype=torch.float64)
    return ListBatch(
        logps=logps,
        counts=torch.ones_like(logps) if counts is None else torch.tensor(counts, dtype=torch.float64),
        scores=torch.tensor(scores, dtype=torch.float64),
        mask=torch.ones_like(logps, dtype=torch.bool) if mask is None else torch.tensor(mask),
        ref_logps=torch.zeros_like(logps),
    )


def test_lipo_pair_weight():
    # K = 2, labels {1, 0}, equal rewards: Delta = 1 - 1/log2(3) = 0.369070, loss = 0.369070 * log 2 = 0.255820.
    out = lipo(listwise([[0.0, 0.0]], [[1.0, 0.0]]), LossSettings(beta=0.1))
    close(out.losses, 0.255820)


def test_lipo_three_completions():
    # s = [1, 0, -1], psi = [1, 0.5, 0], G = [1, 0.414214, 0], 1/D = [1, 0.630930, 0.5]:
    # (0,1) 0.585786*0.369070*softplus(-1) + (0,2) 1*0.5*softplus(-2) + (1,2) 0.414214*0.130930*softplus(-1) = 0.148179
    out = lipo(listwise([[10.0, 0.0, -10.0]], [[2.0, 1.0, 0.0]]), LossSettings(beta=0.1))
    close(out.losses, 0.148179)


def test_lipo_ties_and_padding():
    # Equal labels contribute nothing; a padded third slot changes nothing.
    out = lipo(listwise([[1.0, 2.0, 0.0], [0.0, 0.0, 5.0]], [[1.0, 1.0, 0.0], [1.0, 0.0, 9.0]],
                        mask=[[True, True, True], [True, True, False]]), LossSettings(beta=0.1))
    assert out.losses[0] > 0
    close(out.losses[1:], 0.255820)


def test_pro_hand_values():
    # Two completions, averages [-1, -2], T = 1: log(1 + e^-1) = 0.313262; SFT 0.05 * 1^2 * 1 = 0.05.
    out = pro(listwise([[-1.0, -2.0]], [[1.0, 0.0]]), LossSettings(sft_weight=0.05))
    close(out.losses, 0.363262)
    # Three completions with averages 0: k=1 gives log 3, k=2 gives log 2.
    out = pro(listwise([[0.0, 0.0, 0.0]], [[2.0, 1.0, 0.0]]), LossSettings(sft_weight=0.0))
    close(out.losses, math.log(3) + LOG2)


def test_pro_padding_gradient_finite():
    batch = listwise([[-1.0, -2.0, 0.0]], [[1.0, 0.0, 0.0]], mask=[[True, True, False]])
    batch.logps.requires_grad_(True)
    out = pro(batch, LossSettings(sft_weight=0.0))
    out.losses.sum().backward()
    close(out.losses, 0.313262)
    assert torch.isfinite(batch.logps.grad).all()


def test_registry_loads_every_loss():
    for loss in LOSSES.values():
        assert callable(loss.load()), loss.name


def test_registry_unknown_name_lists_choices():
    with pytest.raises(KeyError, match="expected one of dpo, cdpo"):
        get_loss("sigmoid")


def test_registry_help_names_every_loss():
    text = loss_help()
    for name in LOSSES:
        assert name in text


# -- cross-check against TRL's own loss code on the same log-probs -------------------------


def _trl_dpo_losses(loss_type: str, batch: PairBatch, beta: float, label_smoothing: float = 0.0) -> float:
    """Run TRL's DPOTrainer._compute_loss on a model stub that returns the per-token log-probs of ``batch``.

    Each sequence has one prompt token and ``count`` answer tokens; the log-prob of a
    sequence is spread evenly over its answer tokens.
    """
    from collections import defaultdict

    from trl.trainer.dpo_trainer import DPOTrainer

    counts = torch.cat([batch.chosen_counts, batch.rejected_counts]).long()
    logps = torch.cat([batch.chosen_logps, batch.rejected_logps]).float()
    width = int(counts.max()) + 1
    completion_mask = torch.zeros(len(counts), width, dtype=torch.long)
    per_token = torch.zeros(len(counts), width - 1)
    for row, count in enumerate(counts.tolist()):
        completion_mask[row, 1 : 1 + count] = 1
        per_token[row, :count] = logps[row] / count

    def model(**kwargs):
        zeros = torch.zeros_like(per_token)
        return SimpleNamespace(log_probs=per_token, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool())

    trainer = DPOTrainer.__new__(DPOTrainer)
    accelerator = SimpleNamespace(device=torch.device("cpu"), gather=lambda t: t, gather_for_metrics=lambda t: t)
    trainer.__dict__.update(
        model=SimpleNamespace(training=True), accelerator=accelerator, aux_loss_enabled=False, ld_alpha=None,
        precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=[loss_type], loss_weights=[1.0],
        beta=beta, label_smoothing=label_smoothing, use_weighting=False, _metrics={"train": defaultdict(list)},
        _total_train_tokens=0, _tp_size=1,
    )
    inputs = {
        "input_ids": torch.zeros(len(counts), width, dtype=torch.long),
        "attention_mask": torch.ones(len(counts), width, dtype=torch.long),
        "completion_mask": completion_mask,
        "ref_chosen_logps": batch.ref_chosen_logps.float(),
        "ref_rejected_logps": batch.ref_rejected_logps.float(),
    }
    return float(DPOTrainer._compute_loss(trainer, model, inputs, return_outputs=False))


TRL_DPO_NAMES = [("dpo", "sigmoid", 0.0), ("rdpo", "robust", 0.1), ("ipo", "ipo", 0.0), ("hinge", "hinge", 0.0),
                 ("ln-dpo", "sigmoid_norm", 0.0), ("bco-pair", "bco_pair", 0.0)]


@pytest.mark.parametrize("name,trl_name,smoothing", TRL_DPO_NAMES)
def test_trl_dpo_trainer_agrees(name, trl_name, smoothing):
    pytest.importorskip("trl")
    batch = PairBatch(
        chosen_logps=tensor(-3.0, -7.5, -2.0), rejected_logps=tensor(-4.0, -6.0, -9.0),
        chosen_counts=tensor(1, 3, 2), rejected_counts=tensor(2, 3, 4),
        ref_chosen_logps=tensor(-3.5, -7.0, -4.0), ref_rejected_logps=tensor(-3.0, -6.5, -8.0),
    )
    ours = get_loss(name).load()(batch, LossSettings(beta=0.5, smoothing=smoothing)).losses.mean()
    assert float(ours) == pytest.approx(_trl_dpo_losses(trl_name, batch, beta=0.5, label_smoothing=smoothing), abs=1e-5)


def test_trl_cpo_simpo_agrees():
    pytest.importorskip("trl")
    from trl.experimental.cpo import CPOTrainer

    batch = pairs((-1.0, -2.0, -3.0), (-1.5, -3.0, -1.0), chosen_counts=(1, 2, 3), rejected_counts=(1, 2, 1))
    stub = SimpleNamespace(alpha=0.0, loss_type="simpo", simpo_gamma=1.6, beta=2.0, label_smoothing=0.0,
                           accelerator=SimpleNamespace(device=torch.device("cpu")))
    theirs, _, _ = CPOTrainer.cpo_loss(stub, (batch.chosen_logps / batch.chosen_counts).float(),
                                       (batch.rejected_logps / batch.rejected_counts).float())
    ours = get_loss("simpo").load()(batch, LossSettings(beta=2.0, gamma=1.6)).losses
    torch.testing.assert_close(ours.float(), theirs, atol=1e-5, rtol=0)


def test_trl_orpo_odds_ratio_agrees():
    pytest.importorskip("trl")
    from trl.experimental.orpo import ORPOTrainer

    chosen, rejected = tensor(-0.7, -1.2, -2.5), tensor(-1.4, -0.9, -0.3)
    batch = pairs(chosen, rejected)
    stub = SimpleNamespace(beta=0.1, accelerator=SimpleNamespace(device=torch.device("cpu")))
    ratio_losses = ORPOTrainer.odds_ratio_loss(stub, chosen, rejected)[0]
    # TRL returns beta * log sigmoid(log odds); its loss is NLL - that.
    ours = get_loss("orpo").load()(batch, LossSettings(beta=0.1)).losses
    torch.testing.assert_close(ours, -chosen - ratio_losses, atol=1e-6, rtol=0)


def test_trl_kto_trainer_agrees():
    pytest.importorskip("trl")
    from collections import defaultdict

    from trl.trainer.kto_trainer import KTOTrainer

    logps, ref_logps = tensor(-3.0, -7.5, -2.0, -4.0), tensor(-3.5, -7.0, -4.0, -3.0)
    kl_logps, ref_kl_logps = tensor(-5.0, -6.0, -4.5, -8.0), tensor(-5.5, -5.0, -4.0, -9.0)
    labels = torch.tensor([True, False, True, False])
    # One prompt token and one answer token per sequence, whose log-prob is the sequence's.
    per_token = logps.float().unsqueeze(1)

    def model(**kwargs):
        zeros = torch.zeros_like(per_token)
        return SimpleNamespace(log_probs=per_token, entropy=zeros, mean_logits=zeros)

    trainer = KTOTrainer.__new__(KTOTrainer)
    accelerator = SimpleNamespace(device=torch.device("cpu"), gather=lambda t: t, gather_for_metrics=lambda t: t)
    trainer.__dict__.update(
        model=SimpleNamespace(training=True), accelerator=accelerator, aux_loss_enabled=False,
        precompute_ref_logps=True, calculate_KL=True, loss_type="kto", beta=0.5, desirable_weight=1.0,
        undesirable_weight=1.5, _metrics={"train": defaultdict(list)}, _total_train_tokens=0, _tp_size=1,
    )
    trainer._compute_kl_logps = lambda model, batch: kl_logps.float()
    inputs = {
        "input_ids": torch.zeros(4, 2, dtype=torch.long), "attention_mask": torch.ones(4, 2, dtype=torch.long),
        "completion_mask": torch.tensor([[0, 1]] * 4), "label": labels,
        "ref_logps": ref_logps.float(), "ref_KL_logps": ref_kl_logps.float(),
    }
    theirs = float(KTOTrainer._compute_loss(trainer, model, inputs, return_outputs=False))
    batch = UnpairedBatch(logps=logps, counts=tensor(1, 1, 1, 1), labels=labels, ref_logps=ref_logps,
                          kl_logps=kl_logps, ref_kl_logps=ref_kl_logps)
    ours = kto(batch, LossSettings(beta=0.5, undesirable_weight=1.5)).losses.mean()
    assert float(ours) == pytest.approx(theirs, abs=1e-6)
