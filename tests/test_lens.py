"""The validation lens: ARM's terms defined on the model's predictions, the same for every method."""

import math

import pytest
import torch
from torch.nn import functional as F

from armscope.arm_terms import confidence
from armscope.data import TensorSplit
from armscope.dominance import evaluate
from armscope.information import ncmi, nmi
from armscope.lens import PROBE_SEED, lens_probe, lens_terms
from armscope.models import ARMHead, ConcatHead, MultimodalModel
from armscope.rundir import RunDir
from armscope.train import train

pytestmark = pytest.mark.unit

NAMES = ["audio", "visual"]


class Identity(torch.nn.Module):
    def forward(self, x):
        return x


def features(n: int = 256, d: int = 8):
    g = torch.Generator().manual_seed(0)
    audio = torch.relu(torch.randn(n, d, generator=g))
    visual = torch.relu(0.5 * audio + torch.randn(n, d, generator=g))
    labels = (audio.sum(1) > audio.sum(1).median()).long()
    return {"audio": audio, "visual": visual}, labels


def a_fixed_rule(feats):
    """A prediction no head of ours makes: the class is how much audio outweighs visual."""
    margin = feats["audio"].sum(1) - 0.5 * feats["visual"].sum(1)
    return torch.stack([-margin, margin], dim=1)


def test_the_probe_is_a_fixed_projection_drawn_from_its_own_seed():
    first = lens_probe(16, 8, torch.device("cpu"))
    expected = (torch.rand(8, 16, generator=torch.Generator().manual_seed(PROBE_SEED)) * 2 - 1) / 4
    assert torch.equal(first, expected)
    state = torch.get_rng_state()
    lens_probe(24, 8, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), state)


def test_each_term_is_the_debiased_estimate_on_the_model_predictions():
    feats, labels = features()
    fused = a_fixed_rule(feats)
    without = {m: a_fixed_rule({**feats, m: torch.zeros_like(feats[m])}) for m in NAMES}
    terms = lens_terms(feats, NAMES, fused, without, labels)
    f = torch.cat([feats["audio"], feats["visual"]], 1) @ lens_probe(16, 8, torch.device("cpu")).T
    for i, (m, other) in enumerate([("audio", "visual"), ("visual", "audio")]):
        expected_nmi = nmi(feats[m], f, bins=30, estimator="debiased")
        expected_ncmi = ncmi(feats[m], f, feats[other], bins=2, estimator="debiased")
        p_f, p_rest = confidence(fused, labels), confidence(without[m], labels)
        assert terms.nmi[i] == expected_nmi and terms.ncmi[i] == expected_ncmi
        expected_score = p_f * expected_nmi + p_rest * (expected_nmi - expected_ncmi)
        assert terms.score[i].item() == pytest.approx(expected_score.item(), rel=1e-12)


def test_the_lens_depends_on_the_predictions_not_on_the_head_a_method_trains():
    feats, labels = features()
    split = TensorSplit(feats, labels)
    records = []
    for head in (ConcatHead(NAMES, 8, 2), ARMHead(NAMES, 8, 2)):
        model = MultimodalModel({m: Identity() for m in NAMES}, head)
        records.append(evaluate(model, split, batch_size=64, device=torch.device("cpu"), predict=a_fixed_rule))
    lens_keys = [k for k in records[0] if k.split(".")[0] in ("nmi", "ncmi", "arm_score", "arm_weight")]
    assert len(lens_keys) == 8
    assert {k: records[0][k] for k in lens_keys} == {k: records[1][k] for k in lens_keys}


def test_a_record_says_how_many_elements_each_lens_estimate_pairs():
    feats, labels = features(n=200, d=8)
    model = MultimodalModel({m: Identity() for m in NAMES}, ConcatHead(NAMES, 8, 2))
    record = evaluate(model, TensorSplit(feats, labels), batch_size=64, device=torch.device("cpu"))
    assert record["lens_elements"] == 200 * 8


def test_the_lens_masks_as_the_masked_accuracies_do():
    """p_-m is the prediction with m zeroed: the confidence of the other modality alone, with two."""
    feats, labels = features()
    model = MultimodalModel({m: Identity() for m in NAMES}, ConcatHead(NAMES, 8, 2))
    record = evaluate(model, TensorSplit(feats, labels), batch_size=64, device=torch.device("cpu"), predict=a_fixed_rule)
    only_visual = a_fixed_rule({"audio": torch.zeros_like(feats["audio"]), "visual": feats["visual"]})
    terms = lens_terms(feats, NAMES, a_fixed_rule(feats), {"audio": only_visual, "visual": a_fixed_rule(
        {"audio": feats["audio"], "visual": torch.zeros_like(feats["visual"])})}, labels)
    assert record["arm_score.audio"] == pytest.approx(terms.score[0].item(), rel=1e-12)
    assert record["confidence.visual"] == pytest.approx(confidence(only_visual, labels).item(), rel=1e-12)
    assert math.isclose(record["val_loss"], F.cross_entropy(a_fixed_rule(feats), labels).item(), rel_tol=1e-6)


def test_an_arm_run_logs_its_step_size_beside_the_lens_size(tiny_config, tmp_path):
    assert train(tiny_config(epochs=1), tmp_path / "run").status == "succeeded"
    (record,) = RunDir(tmp_path / "run").metrics()
    feature_dim, validation_samples = 16, 120  # synthetic-shift holds out a fifth of its 600 samples
    assert record["arm_step_elements"] == pytest.approx(record["samples_seen"] * feature_dim / record["step"])
    assert record["lens_elements"] == validation_samples * feature_dim


def test_a_run_checkpointed_with_the_retired_lens_probe_resumes(tiny_config, tmp_path):
    """Concat-head checkpoints written before the common lens hold its projection as a buffer."""
    assert train(tiny_config(method="baseline", epochs=1), tmp_path / "run").status == "succeeded"
    folder = RunDir(tmp_path / "run")
    state = folder.load_checkpoint()
    state["model"]["head.lens_probe"] = torch.zeros(16, 32)
    folder.save_checkpoint(state)
    assert train(tiny_config(method="baseline", epochs=2), tmp_path / "run", resume=True).status == "succeeded"
    assert [r["epoch"] for r in folder.metrics()] == [1, 2]
