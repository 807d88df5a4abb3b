"""MMCosine: each modality's class cosines, scaled by s and summed, are the logits (METHODS.md A.5).

The worked example, checked by hand: z_a = (3, 4), W_a rows (1, 0) and (0, 2); z_v = (1, 0), W_v rows
(0, 1) and (1, 1). |z_a| = 5, so cos_a = (3/5, 4/5) = (0.6, 0.8); cos_v = (0, 1/sqrt 2) = (0, 0.707107).
s = 10: l = (6 + 0, 8 + 7.071068) = (6, 15.071068); s = 15: l = (9, 12 + 10.606602) = (9, 22.606602).
CE for y = 0: log(e^6 + e^15.071068) - 6 = 9.071068 + log(1 + e^-9.071068) = 9.071068 + 0.000115 = 9.071183.
"""

import math

import pytest
import torch

from armscope.builtin.methods.mmcosine import MMCosineOptions, cosine_head_size
from armscope.methods import build_method
from armscope.methods.mmcosine import CosineHead, class_cosines, fused_logits, target_cosines, unimodal_hits
from armscope.models import MultimodalModel
from armscope.rundir import RunDir
from armscope.train import train

pytestmark = pytest.mark.unit

Z_A, W_A = torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0], [0.0, 2.0]])
Z_V, W_V = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0], [1.0, 1.0]])
HALF_ROOT_TWO = 1 / math.sqrt(2)


def assert_values(actual, expected):
    torch.testing.assert_close(actual, torch.tensor(expected), rtol=0, atol=1e-6)


def example_cosines():
    return torch.stack([class_cosines(Z_A, W_A), class_cosines(Z_V, W_V)])


def example_model(scale):
    head = CosineHead(["audio", "visual"], 2, 2, scale)
    with torch.no_grad():
        head.weight["audio"].copy_(W_A)
        head.weight["visual"].copy_(W_V)
    return MultimodalModel({"audio": torch.nn.Identity(), "visual": torch.nn.Identity()}, head)


def test_a_modalitys_class_cosines_ignore_the_norms_of_features_and_weights():
    assert_values(class_cosines(Z_A, W_A), [[0.6, 0.8]])
    assert_values(class_cosines(Z_V, W_V), [[0.0, HALF_ROOT_TWO]])
    # z_a x 7 and the class rows x 0.1 and x 30: the same directions, so the same cosines.
    rescaled = class_cosines(7 * Z_A, torch.tensor([[0.1, 0.0], [0.0, 60.0]]))
    assert_values(rescaled, [[0.6, 0.8]])


@pytest.mark.parametrize(("scale", "expected"), [(10.0, [6.0, 15.071068]), (15.0, [9.0, 22.606602])])
def test_the_fused_logits_are_the_scaled_sum_of_the_modalities_cosines(scale, expected):
    assert_values(fused_logits(example_cosines(), scale), [expected])


def test_the_head_predicts_the_scaled_cosine_sum():
    model = example_model(15.0)
    assert_values(model.head({"audio": Z_A, "visual": Z_V}), [[9.0, 22.606602]])


def test_the_loss_is_cross_entropy_on_the_cosine_logits():
    method = build_method("mmcosine", {}, ["audio", "visual"], 2, 2)
    method.begin_epoch(1, 0, 1, torch.device("cpu"))
    loss = method.loss(example_model(10.0), {"audio": Z_A, "visual": Z_V}, torch.tensor([0]), 0)
    assert loss.item() == pytest.approx(9.071183, abs=1e-6)


def test_a_zeroed_modality_contributes_exactly_nothing():
    assert torch.equal(class_cosines(torch.zeros(1, 2), W_V), torch.zeros(1, 2))
    logits = example_model(10.0).head({"audio": Z_A, "visual": torch.zeros(1, 2)})
    assert_values(logits, [[6.0, 8.0]])  # s * cos_a alone


def test_every_modality_masked_gives_all_zero_logits():
    logits = example_model(10.0).head({"audio": torch.zeros(3, 2), "visual": torch.zeros(3, 2)})
    assert torch.equal(logits, torch.zeros(3, 2))


def test_the_target_cosine_is_each_modalitys_cosine_with_the_true_class():
    # Two samples, both the example, labelled 0 and 1: audio (0.6, 0.8), visual (0, 0.707107).
    cosines = example_cosines().expand(2, 2, 2)
    assert_values(target_cosines(cosines, torch.tensor([0, 1])), [[0.6, 0.8], [0.0, HALF_ROOT_TWO]])


def test_a_unimodal_hit_is_the_argmax_of_that_modalitys_cosines():
    # Both modalities put their larger cosine on class 1: right for label 1, wrong for label 0.
    cosines = example_cosines().expand(2, 2, 2)
    assert unimodal_hits(cosines, torch.tensor([0, 1])).tolist() == [[False, True], [False, True]]


def test_the_epoch_metrics_are_means_over_the_training_samples():
    method = build_method("mmcosine", {}, ["audio", "visual"], 2, 2)
    method.begin_epoch(1, 0, 2, torch.device("cpu"))
    model, feats = example_model(10.0), {"audio": Z_A, "visual": Z_V}
    method.loss(model, feats, torch.tensor([0]), 0)
    method.loss(model, feats, torch.tensor([1]), 1)
    metrics = {key: value.item() for key, value in method.end_epoch().metrics.items()}
    assert metrics == pytest.approx({
        "mmcosine_target_cos.audio": (0.6 + 0.8) / 2,
        "mmcosine_target_cos.visual": (0.0 + HALF_ROOT_TWO) / 2,
        "mmcosine_acc.audio": 0.5,
        "mmcosine_acc.visual": 0.5,
    })


def test_the_head_holds_one_bias_free_class_matrix_per_modality():
    head = CosineHead(["a", "b", "c"], 16, 7)
    assert sum(p.numel() for p in head.parameters()) == 3 * 7 * 16
    assert list(head.buffers()) == []
    assert cosine_head_size(3, 16, 7).parameters == 3 * 7 * 16
    assert cosine_head_size(3, 16, 7).buffers == 0


def test_the_scale_defaults_to_the_authors_ten_and_reaches_the_head():
    assert MMCosineOptions().scaling == 10.0
    method = build_method("mmcosine", {"scaling": 15}, ["audio", "visual"], 2, 2)
    assert method.build_head().scale == 15.0
    with pytest.raises(ValueError):
        MMCosineOptions(scaling=0)


def test_a_short_run_logs_the_cosines_and_unimodal_accuracies_every_epoch(tiny_config, tmp_path):
    result = train(tiny_config(method="mmcosine", epochs=2), tmp_path / "run")
    assert result.status == "succeeded", result.error
    records = RunDir(tmp_path / "run").metrics()
    assert len(records) == 2
    for record in records:
        for m in ("audio", "visual"):
            assert -1 <= record[f"mmcosine_target_cos.{m}"] <= 1
            assert 0 <= record[f"mmcosine_acc.{m}"] <= 1
    first, last = records
    # Training pulls every modality's features towards its true class's weights.
    assert all(last[f"mmcosine_target_cos.{m}"] > first[f"mmcosine_target_cos.{m}"] for m in ("audio", "visual"))
    assert last["val_acc"] > 1 / 10  # better than chance over the synthetic data's 10 classes
