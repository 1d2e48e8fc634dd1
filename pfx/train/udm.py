"""BCO's underlying distribution matching: weight undesirable examples by a prompt density ratio.

When desirable and undesirable records come from different prompt
distributions, BCO ("Binary Classifier Optimization for Large Language Model
Alignment", arXiv 2404.04656) reweights each undesirable example by
p_D+(x) / p_D-(x), estimated with a classifier on prompt embeddings. As in
TRL's BCOTrainer: sample up to ``sample_size`` prompts of each class, embed them
(mean of the last hidden state), fit a class-balanced logistic regression
(desirable = 1), and set w(x) = clamp(p / (1 - p + 1e-8), 0.5, 10) with
p = P(desirable | x). Unlike TRL, the weights are computed once before
training for every undesirable example, and again identically on resume.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import torch

MIN_RATIO, MAX_RATIO = 0.5, 10.0


def embed_prompts(model: Any, tokenizer: Any, prompts: Sequence[str], batch_size: int = 16,
                  max_length: int = 512) -> torch.Tensor:
    """Return the mean of the last hidden state over each prompt's tokens (padding excluded), (N, hidden)."""
    device = next(model.parameters()).device
    rows = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            encoded = tokenizer(list(prompts[start:start + batch_size]), return_tensors="pt", padding=True,
                                truncation=True, max_length=max_length).to(device)
            hidden = model(**encoded, output_hidden_states=True).hidden_states[-1].float()
            mask = encoded["attention_mask"].unsqueeze(-1).float()
            rows.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu())
    return torch.cat(rows)


def fit_classifier(desirable: torch.Tensor, undesirable: torch.Tensor, l2: float = 1.0,
                   steps: int = 100) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fit a class-balanced L2 logistic regression (desirable = 1); return (weight, bias, mean, std).

    Features are standardised with the training mean and std. ``l2`` is the
    inverse of scikit-learn's C (both default to 1).
    """
    features = torch.cat([desirable, undesirable]).double()
    labels = torch.cat([torch.ones(len(desirable)), torch.zeros(len(undesirable))]).double()
    mean, std = features.mean(0), features.std(0).clamp(min=1e-6)
    features = (features - mean) / std
    # Balanced class weights: n / (2 * n_class), as scikit-learn's class_weight="balanced".
    sample_weights = torch.where(labels == 1, len(labels) / (2 * len(desirable)), len(labels) / (2 * len(undesirable)))
    weight = torch.zeros(features.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = features @ weight + bias
        loss = (sample_weights * torch.nn.functional.binary_cross_entropy_with_logits(
            logits, labels, reduction="none")).sum() + 0.5 * l2 * (weight ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach(), mean, std


def density_ratios(embeddings: torch.Tensor, classifier: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Return clamp(p / (1 - p + 1e-8), 0.5, 10) per row, p = P(desirable | embedding)."""
    weight, bias, mean, std = classifier
    probability = torch.sigmoid(((embeddings.double() - mean) / std) @ weight + bias)
    return (probability / (1 - probability + 1e-8)).clamp(MIN_RATIO, MAX_RATIO).float()


def undesirable_weights(model: Any, tokenizer: Any, prompts: Sequence[str], labels: Sequence[bool],
                        sample_size: int, seed: int) -> list[float]:
    """Return a weight per example: the density ratio for undesirable ones, 1.0 for desirable ones.

    Raises ValueError when one class is missing, since the classifier needs both.
    """
    positive = [i for i, label in enumerate(labels) if label]
    negative = [i for i, label in enumerate(labels) if not label]
    if not positive or not negative:
        raise ValueError("distribution matching needs desirable and undesirable records; the input has only one kind")
    generator = random.Random(seed)
    sample_positive = generator.sample(positive, min(sample_size, len(positive)))
    sample_negative = generator.sample(negative, min(sample_size, len(negative)))
    classifier = fit_classifier(embed_prompts(model, tokenizer, [prompts[i] for i in sample_positive]),
                                embed_prompts(model, tokenizer, [prompts[i] for i in sample_negative]))
    ratios = density_ratios(embed_prompts(model, tokenizer, [prompts[i] for i in negative]), classifier)
    weights = [1.0] * len(labels)
    for index, ratio in zip(negative, ratios.tolist()):
        weights[index] = ratio
    return weights
