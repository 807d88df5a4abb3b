"""ARM's running weighting: weights from the moving average of the per-step scores, not from each step's own.

The per-step scores at small batches are as noisy as they are large and a weight is their ratio, so
the published per-step rule makes the weights depend on the batch size; weighing with the scores'
moving average makes them a property of the trained model (issue 14).
"""

from __future__ import annotations

import math

import pytest
import torch

from armscope.arm_terms import GUARD_NONFINITE, STEP_STATS, arm_step, arm_terms, asymmetric_weights, running_scores
from armscope.config import RunConfig
from armscope.dominance import encode_split
from armscope.methods.base import build_method
from armscope.models.heads import ARMHead, arm_lens
from armscope.rundir import RunDir
from armscope.train import train
from tests.support import trained_model, without_timing
from tests.test_gpu_path import steps_on_meta, with_av_model

pytestmark = pytest.mark.unit

BOUNDS = dict(w_min=0.1, w_max=10.0)
SETTINGS = dict(ema_decay=0.9, nmi_bins=30, ncmi_bins=2, estimator="debiased", **BOUNDS)


def batches(n: int, size: int = 32, seed: int = 0) -> list[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            {
                "audio": torch.relu(torch.randn(size, 16, generator=generator)),
                "visual": torch.relu(2 * torch.randn(size, 16, generator=generator)),
            },
            torch.randint(0, 5, (size,), generator=generator),
        )
        for _ in range(n)
    ]


def head() -> ARMHead:
    torch.manual_seed(0)
    return ARMHead(["audio", "visual"], 16, 5)


def own_scores(model: ARMHead, feats: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    lens = arm_lens(feats, model.modalities, *model.lens_parameters)
    return arm_terms(feats, lens, labels, estimator="debiased", nmi_bins=30, ncmi_bins=2, **BOUNDS).score


def step(model: ARMHead, running: torch.Tensor, feats, labels, decay: float = 0.5):
    stats = torch.zeros(STEP_STATS, 2, dtype=torch.float64)
    return arm_step(feats, model, labels, stats, running=running, score_decay=decay, **SETTINGS)


def test_the_first_step_weighs_with_its_own_scores():
    model, ((feats, labels),) = head(), batches(1)
    weight, _ = step(model, running_scores(2), feats, labels)
    expected, _ = asymmetric_weights(own_scores(model, feats, labels), **BOUNDS)
    torch.testing.assert_close(weight, expected.float())


def test_later_steps_weigh_with_the_bias_corrected_moving_average_of_the_scores():
    model, data, running, decay = head(), batches(3), running_scores(2), 0.5
    for feats, labels in data:
        weight, _ = step(model, running, feats, labels, decay)
    s1, s2, s3 = (own_scores(model, f, y) for f, y in data)
    # Worked by hand: with d = 0.5, (1-d)(d^2 s1 + d s2 + s3) / (1 - d^3) = (s1 + 2 s2 + 4 s3) / 7.
    expected, _ = asymmetric_weights((s1 + 2 * s2 + 4 * s3) / 7, **BOUNDS)
    torch.testing.assert_close(weight, expected.float())


def test_a_step_with_a_non_finite_score_leaves_the_average_and_is_flagged():
    model, ((feats, labels), (bad, bad_labels)) = head(), batches(2)
    running = running_scores(2)
    before, _ = step(model, running, feats, labels)
    kept = running.clone()
    bad = {"audio": bad["audio"].clone().fill_(math.nan), "visual": bad["visual"]}
    after, guard = step(model, running, bad, bad_labels)
    assert torch.equal(running, kept)
    assert torch.equal(after, before)
    assert int(guard) & GUARD_NONFINITE


def test_before_any_finite_score_the_weights_are_one_and_flagged():
    model, ((feats, labels),) = head(), batches(1)
    feats = {"audio": feats["audio"].clone().fill_(math.nan), "visual": feats["visual"]}
    weight, guard = step(model, running_scores(2), feats, labels)
    assert weight.tolist() == [1.0, 1.0] and int(guard) & GUARD_NONFINITE


def test_step_weighting_is_unchanged_by_the_option():
    model, ((feats, labels),) = head(), batches(1)
    stats = torch.zeros(STEP_STATS, 2, dtype=torch.float64)
    weight, _ = arm_step(feats, model, labels, stats, **SETTINGS)
    expected, _ = asymmetric_weights(own_scores(model, feats, labels), **BOUNDS)
    torch.testing.assert_close(weight, expected.float())


def test_a_running_weighting_step_never_synchronises_with_the_host():
    device = torch.device("meta")  # any .item(), bool() or .cpu() of a meta tensor raises
    method = build_method("arm", {"weighting": "running"}, ["audio", "visual"], 6, 512)
    steps_on_meta(*with_av_model(method, device), device)


def test_a_compiled_running_step_gives_the_weights_and_average_of_the_eager_step():
    outcomes = []
    for compiled in (False, True):
        model, running = head(), running_scores(2)
        weights = [
            arm_step(feats, model, labels, torch.zeros(STEP_STATS, 2, dtype=torch.float64), running=running,
                     score_decay=0.5, compiled=compiled, **SETTINGS)[0]
            for feats, labels in batches(3)
        ]
        outcomes.append((torch.stack(weights), running))
    (eager_weights, eager_running), (compiled_weights, compiled_running) = outcomes
    # The confidences are float32 softmax means, which the fused kernels round differently.
    torch.testing.assert_close(compiled_weights, eager_weights, rtol=1e-6, atol=0)
    torch.testing.assert_close(compiled_running, eager_running, rtol=1e-6, atol=0)


def uci_checkpoint(tmp_path) -> tuple[dict[str, torch.Tensor], torch.Tensor, ARMHead]:
    """ARM (debiased) trained on uci-mfeat (zer, fac), and its training split's features."""
    config = RunConfig.model_validate({
        "dataset": "uci-mfeat", "dataset_options": {"views": ["zer", "fac"]}, "epochs": 30, "method": "arm",
        "method_options": {"estimator": "debiased"}, "device": "cpu",
    })
    assert train(config, tmp_path).status == "succeeded"
    bundle, model = trained_model(config, tmp_path)
    feats, labels = encode_split(model, bundle.train, 512, torch.device("cpu"))
    return feats, labels, model.head


def weights_over_one_pass(feats, labels, model: ARMHead, batch: int) -> torch.Tensor:
    """The mean of the weights ARM's steps would apply, batch after batch through the split, from a fresh average."""
    running, applied = running_scores(len(feats)), []
    for start in range(0, labels.numel() // batch * batch, batch):
        part = {m: f[start:start + batch] for m, f in feats.items()}
        stats = torch.zeros(STEP_STATS, len(feats), dtype=torch.float64)
        weight, _ = arm_step(part, model, labels[start:start + batch], stats, running=running, score_decay=0.9,
                             **SETTINGS)
        applied.append(weight.double())
    return torch.stack(applied).mean(0)


def test_on_one_checkpoint_the_running_weights_at_batch_64_and_512_agree_within_ten_percent(tmp_path):
    feats, labels, model = uci_checkpoint(tmp_path)
    small, large = (weights_over_one_pass(feats, labels, model, batch) for batch in (64, 512))
    assert (small - 1).abs().max() > 0.05  # the weights say something: not the guard's 1
    assert ((small - large).abs() / large).max() <= 0.10


def test_a_resumed_run_with_running_weighting_ends_as_an_uninterrupted_one(tiny_config, tmp_path):
    options = {"weighting": "running", "score_decay": 0.8}
    whole = train(tiny_config(epochs=3, method_options=options), tmp_path / "whole")
    assert whole.status == "succeeded"
    train(tiny_config(epochs=1, method_options=options), tmp_path / "resumed")
    resumed = train(tiny_config(epochs=3, method_options=options), tmp_path / "resumed", resume=True)
    assert resumed.status == "succeeded", resumed.error
    expected = without_timing(RunDir(tmp_path / "whole").metrics())
    assert without_timing(RunDir(tmp_path / "resumed").metrics()) == expected


def test_a_checkpoint_without_the_running_scores_is_refused_naming_them(tiny_config):
    config = tiny_config(method_options={"weighting": "running"})
    method = build_method("arm", config.parsed_method_options, ["audio", "visual"], 5, 16)
    with pytest.raises(ValueError, match="running_scores"):
        method.load_state_dict({})


def test_an_unknown_weighting_is_refused_naming_the_choices(tiny_config):
    with pytest.raises(ValueError, match="'step' or 'running'"):
        tiny_config(method_options={"weighting": "smoothed"})
