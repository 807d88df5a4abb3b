"""``armscope.lens.measure``: our runs' per-epoch measures and the contribution lens, on a model of the user's own.

The model, loader and labels stay the user's: ``predict(batch, present)`` gives the logits with only the
modalities in ``present``, ``features(batch)`` each modality's features and the fused features.
"""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from armscope.arm_terms import arm_terms
from armscope.data import TensorSplit
from armscope.dominance import evaluate
from armscope.lens import measure
from armscope.metrics import COMMON, find
from armscope.models import ConcatHead, MultimodalModel
from armscope.models.heads import Lens

NAMES = ["audio", "visual"]
N_CLASSES = 3
WIDTH = 6  # every modality's token
FUSED = 16  # the fused representation the classifier reads
SAMPLES = 40
LENS_KEYS = ("nmi.", "ncmi.", "arm_score.", "arm_weight.", "lens_elements")


class TokenModel(nn.Module):
    """Unlike any model of ours: inputs of different widths become tokens, an absent modality's token is a
    learned one, a gate weighs the tokens into one, and a hidden layer with dropout reads it."""

    def __init__(self, inputs: dict[str, int]) -> None:
        super().__init__()
        self.embed = nn.ModuleDict({m: nn.Linear(width, WIDTH) for m, width in inputs.items()})
        self.absent = nn.ParameterDict({m: nn.Parameter(torch.randn(WIDTH)) for m in inputs})
        self.gate = nn.Linear(WIDTH, 1)
        self.hidden = nn.Sequential(nn.Linear(WIDTH, FUSED), nn.ReLU(), nn.Dropout(0.5))
        self.classify = nn.Linear(FUSED, N_CLASSES)

    def tokens(self, batch, present):
        rows = batch["label"].shape[0]
        return {
            m: torch.tanh(self.embed[m](batch[m])) if m in present else self.absent[m].expand(rows, WIDTH)
            for m in self.embed
        }

    def fuse(self, tokens):
        stacked = torch.stack(list(tokens.values()), dim=1)
        return self.hidden((torch.softmax(self.gate(stacked), dim=1) * stacked).sum(1))

    def forward(self, batch, present):
        return self.classify(self.fuse(self.tokens(batch, present)))

    def features(self, batch):
        tokens = self.tokens(batch, frozenset(self.embed))
        return tokens, self.fuse(tokens)


def token_setup(names=NAMES):
    """The token model and a DataLoader of dict batches (16, 16, 8 samples), the label shifting every input."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, N_CLASSES, (SAMPLES,), generator=g)
    inputs = {m: 5 + 2 * i for i, m in enumerate(names)}
    data = {m: torch.randn(SAMPLES, w, generator=g) + labels[:, None].float() for m, w in inputs.items()}
    samples = [{**{m: data[m][i] for m in names}, "label": labels[i]} for i in range(SAMPLES)]
    torch.manual_seed(0)
    return TokenModel(inputs), DataLoader(samples, batch_size=16)


def measured(model, loader, names=NAMES, **options):
    return measure(model, loader, modalities=names, n_classes=N_CLASSES, model=model, **options)


def accuracy_with(model, loader, present):
    model.eval()
    with torch.no_grad():
        return sum(int((model(b, present).argmax(1) == b["label"]).sum()) for b in loader) / SAMPLES


# -- a model of the user's own ------------------------------------------------------------------------


def test_a_model_of_the_users_own_gets_the_keys_our_runs_log_as_plain_python_values():
    model, loader = token_setup()
    record = measured(model, loader, features=model.features)
    families = ("val_acc", "confidence", "shapley", "nmi", "ncmi", "arm_score", "arm_weight")
    expected = {"val_acc", "val_loss", "val_f1", "dominant", "imbalance", "bb_imbalance", "lens_elements"}
    assert set(record) == expected | {f"{family}.{m}" for family in families for m in NAMES}
    assert all(find(key, COMMON) is not None for key in record)
    assert {type(value) for value in record.values()} <= {float, int, str}


def test_the_accuracies_are_the_models_own_with_a_learned_token_for_an_absent_modality():
    model, loader = token_setup()
    record = measured(model, loader)
    assert record["val_acc"] == accuracy_with(model, loader, frozenset(NAMES))
    assert record["val_acc.audio"] == accuracy_with(model, loader, frozenset(["audio"]))
    assert record["val_acc.visual"] == accuracy_with(model, loader, frozenset(["visual"]))


def test_shapley_values_sum_to_the_accuracy_with_every_modality_less_that_with_none():
    names = ["audio", "visual", "text"]
    model, loader = token_setup(names)
    record = measured(model, loader, names)
    with_none = accuracy_with(model, loader, frozenset())
    assert sum(record[f"shapley.{m}"] for m in names) == pytest.approx(record["val_acc"] - with_none, abs=1e-12)


def test_the_arm_terms_come_only_with_features():
    model, loader = token_setup()
    record = measured(model, loader)
    assert [key for key in record if key.startswith(LENS_KEYS)] == []


def test_with_the_plugin_estimator_the_terms_are_arm_terms_on_a_fixed_projection_of_the_fused_features():
    model, loader = token_setup()
    record = measured(model, loader, features=model.features, estimator="plugin")
    full, audio, visual = frozenset(NAMES), frozenset(["audio"]), frozenset(["visual"])
    model.eval()
    with torch.no_grad():
        batches = list(loader)
        tokens = [model.tokens(b, full) for b in batches]
        feats = {m: torch.cat([t[m] for t in tokens]) for m in NAMES}
        fused = torch.cat([model.fuse(t) for t in tokens])
        logits = {s: torch.cat([model(b, s) for b in batches]) for s in (full, audio, visual)}
    labels = torch.cat([b["label"] for b in batches])
    # The lens's probe: uniform in +-1/sqrt(16) from seed 1234, one row per feature of a modality.
    probe = (torch.rand(WIDTH, FUSED, generator=torch.Generator().manual_seed(1234)) * 2 - 1) / 4
    lens = Lens(
        probe=fused @ probe.T,
        fused_logits=logits[full],
        rest_logits={"audio": logits[visual], "visual": logits[audio]},
        rest_features={"audio": feats["visual"], "visual": feats["audio"]},
    )
    terms = arm_terms(feats, lens, labels, estimator="plugin", nmi_bins=30, ncmi_bins=2, w_min=0.1, w_max=10.0)
    for i, m in enumerate(NAMES):
        assert record[f"nmi.{m}"] == terms.nmi[i].item()
        assert record[f"ncmi.{m}"] == terms.ncmi[i].item()
        assert record[f"arm_score.{m}"] == terms.score[i].item()
        assert record[f"arm_weight.{m}"] == terms.weight[i].item()
    assert record["lens_elements"] == SAMPLES * WIDTH


def test_a_label_function_reads_the_labels_where_the_batch_keeps_them():
    model, loader = token_setup()
    renamed = [{**{k: v for k, v in b.items() if k != "label"}, "y": b["label"]} for b in loader]
    record = measure(
        lambda b, present: model({**b, "label": b["y"]}, present), renamed, modalities=NAMES, n_classes=N_CLASSES,
        label=lambda b: b["y"], model=model,
    )
    assert record["val_acc"] == accuracy_with(model, loader, frozenset(NAMES))


# -- predictions chosen by hand -------------------------------------------------------------------------
# Four samples, labels 0 1 0 1, two batches. Which samples each subset of a, b, c predicts right, so v(S), its
# accuracy, is v() 1/4, v(a) 2/4, v(b) 1/4, v(c) 1/4, v(ab) 3/4, v(ac) 2/4, v(bc) 2/4, v(abc) 3/4.
RIGHT = {
    "": [1, 0, 0, 0], "a": [1, 1, 0, 0], "b": [0, 0, 1, 0], "c": [0, 0, 0, 1],
    "ab": [1, 1, 1, 0], "ac": [1, 0, 1, 0], "bc": [0, 1, 0, 1], "abc": [1, 1, 1, 0],
}
LABELS = torch.tensor([0, 1, 0, 1])
CHOSEN_BATCHES = [
    {"index": torch.tensor([0, 1]), "label": LABELS[:2]},
    {"index": torch.tensor([2, 3]), "label": LABELS[2:]},
]


def chosen(batch, present):
    """Logits giving the chosen class probability 3/4: the label where RIGHT says so, else the other class."""
    right = torch.tensor(RIGHT["".join(sorted(present))], dtype=torch.bool)[batch["index"]]
    predicted = torch.where(right, batch["label"], 1 - batch["label"])
    return torch.log(torch.where(F.one_hot(predicted, 2).bool(), 0.75, 0.25))


def measured_by_hand():
    return measure(chosen, CHOSEN_BATCHES, modalities=["a", "b", "c"], n_classes=2)


def test_the_accuracies_and_shapley_values_of_chosen_predictions_are_worked_by_hand():
    record = measured_by_hand()
    assert (record["val_acc"], record["val_acc.a"], record["val_acc.b"], record["val_acc.c"]) == (0.75, 0.5, 0.25, 0.25)
    # phi_a = 1/3 (v(a) - v()) + 1/6 (v(ab) - v(b)) + 1/6 (v(ac) - v(c)) + 1/3 (v(abc) - v(bc))
    #       = 1/3 * 1/4 + 1/6 * 2/4 + 1/6 * 1/4 + 1/3 * 1/4 = 7/24; likewise phi_b = 4/24, phi_c = 1/24.
    assert record["shapley.a"] == pytest.approx(7 / 24, abs=1e-12)
    assert record["shapley.b"] == pytest.approx(4 / 24, abs=1e-12)
    assert record["shapley.c"] == pytest.approx(1 / 24, abs=1e-12)
    assert sum(record[f"shapley.{m}"] for m in "abc") == pytest.approx(0.75 - 0.25, abs=1e-12)


def test_the_dominance_and_imbalance_of_chosen_predictions_are_worked_by_hand():
    record = measured_by_hand()
    assert record["dominant"] == "a"
    # (7/24 - 1/24) / (7/24 + 4/24 + 1/24); the mean gap over the pairs (3/24 + 6/24 + 3/24) / 3.
    assert record["imbalance"] == pytest.approx(0.5, abs=1e-12)
    assert record["bb_imbalance"] == pytest.approx(1 / 6, abs=1e-12)


def test_the_confidences_loss_and_f1_of_chosen_predictions_are_worked_by_hand():
    record = measured_by_hand()
    # a alone is right on 2 samples (probability 3/4 on the label) and wrong on 2 (1/4); b and c on 1 of 4.
    assert record["confidence.a"] == pytest.approx((2 * 0.75 + 2 * 0.25) / 4, rel=1e-6)
    assert record["confidence.b"] == pytest.approx((0.75 + 3 * 0.25) / 4, rel=1e-6)
    assert record["val_loss"] == pytest.approx((-3 * math.log(0.75) - math.log(0.25)) / 4, rel=1e-6)
    # With every modality the predictions are 0 1 0 0 for labels 0 1 0 1: class 0 has tp 2, fp 1, so F1
    # 2 * 2 / (2 * 2 + 1) = 4/5; class 1 tp 1, fn 1, so 2 / (2 + 1) = 2/3.
    assert record["val_f1"] == pytest.approx((4 / 5 + 2 / 3) / 2, abs=1e-12)


# -- the same numbers as our own evaluation ---------------------------------------------------------------


def our_model_and_split(n=48):
    g = torch.Generator().manual_seed(1)
    split = TensorSplit({m: torch.randn(n, 5, generator=g) for m in NAMES}, torch.randint(0, 3, (n,), generator=g))
    torch.manual_seed(1)
    encoders = {m: nn.Sequential(nn.Linear(5, 8), nn.ReLU()) for m in NAMES}
    return MultimodalModel(encoders, ConcatHead(NAMES, 8, 3)), split


def zeroing(model):
    """predict and features as our evaluation has them: absent features zeroed, f on their concatenation."""

    def predict(batch, present):
        feats = model.encode(batch[0])
        return model.head({m: h if m in present else torch.zeros_like(h) for m, h in feats.items()})

    def features(batch):
        feats = model.encode(batch[0])
        return feats, torch.cat([feats[m] for m in NAMES], dim=1)

    return predict, features


def test_zeroing_features_as_our_evaluation_does_gives_its_numbers():
    model, split = our_model_and_split()
    ours = evaluate(model, split, batch_size=48, device=torch.device("cpu"))
    predict, features = zeroing(model)
    batches = list(split.batches(48, shuffle=False))
    assert measure(predict, batches, modalities=NAMES, n_classes=3, features=features, model=model) == ours


def test_in_batches_the_counted_measures_are_our_evaluations_and_the_summed_ones_within_rounding():
    model, split = our_model_and_split()
    ours = evaluate(model, split, batch_size=48, device=torch.device("cpu"))
    predict, _ = zeroing(model)
    record = measure(predict, list(split.batches(16, shuffle=False)), modalities=NAMES, n_classes=3, model=model)
    counted = [k for k in record if k.startswith(("val_acc", "val_f1", "shapley.", "imbalance", "bb_", "dominant"))]
    assert {k: record[k] for k in counted} == {k: ours[k] for k in counted}
    summed = [k for k in record if k not in counted]
    assert {k: record[k] for k in summed} == pytest.approx({k: ours[k] for k in summed}, rel=1e-6)


# -- how it runs ----------------------------------------------------------------------------------------


def test_the_model_is_measured_in_eval_mode_and_every_modules_own_mode_is_restored():
    model, loader = token_setup()
    model.train()
    model.embed["audio"].eval()  # a part the user froze
    modes = []

    def predict(batch, present):
        modes.append(any(module.training for module in model.modules()))
        return model(batch, present)

    measure(predict, loader, modalities=NAMES, n_classes=N_CLASSES, model=model)
    assert modes and not any(modes)
    assert model.training and model.hidden.training and not model.embed["audio"].training


def test_the_modes_are_restored_when_predict_fails():
    model, loader = token_setup()
    model.train()

    def failing(batch, present):
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        measure(failing, loader, modalities=NAMES, n_classes=N_CLASSES, model=model)
    assert all(module.training for module in model.modules())


def test_predict_and_features_run_without_autograd():
    model, loader = token_setup()
    grad_enabled = []

    def predict(batch, present):
        grad_enabled.append(torch.is_grad_enabled())
        return model(batch, present)

    def features(batch):
        grad_enabled.append(torch.is_grad_enabled())
        return model.features(batch)

    measure(predict, loader, modalities=NAMES, n_classes=N_CLASSES, features=features)
    assert grad_enabled and not any(grad_enabled)


def test_the_measures_are_read_back_from_the_device_once(monkeypatch):
    model, loader = token_setup()
    batches = list(loader)  # the DataLoader draws its seed with .item(): the user's read, not the measure's
    reads = []

    def counted(name, original):
        def read(*args, **kwargs):
            reads.append(name)
            return original(*args, **kwargs)

        return read

    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, counted(name, getattr(torch.Tensor, name)))
    measured(model, batches, features=model.features)
    assert reads == ["tolist"]


# -- bad input, named ------------------------------------------------------------------------------------


def test_logits_of_the_wrong_shape_are_refused_naming_both_shapes():
    model, loader = token_setup()

    def too_wide(batch, present):
        return F.pad(model(batch, present), (0, 1))

    with pytest.raises(ValueError, match=r"shape \(16, 4\); expected \(16, 3\)"):
        measure(too_wide, loader, modalities=NAMES, n_classes=N_CLASSES)


def test_features_of_a_modality_not_measured_are_refused_naming_it():
    model, loader = token_setup()

    def features(batch):
        feats, fused = model.features(batch)
        return {**feats, "text": feats["audio"]}, fused

    with pytest.raises(ValueError, match=r"unknown: \['text'\]"):
        measured(model, loader, features=features)


def test_features_of_unequal_widths_are_refused_naming_the_widths():
    model, loader = token_setup()

    def features(batch):
        feats, fused = model.features(batch)
        return {"audio": feats["audio"], "visual": feats["visual"][:, :4]}, fused

    with pytest.raises(ValueError, match="one width.*audio 6, visual 4"):
        measured(model, loader, features=features)


def test_an_empty_loader_is_refused():
    model, _ = token_setup()
    with pytest.raises(ValueError, match="no samples"):
        measured(model, [])


def test_more_modalities_than_exact_shapley_values_allow_are_refused():
    names = [f"m{i}" for i in range(9)]
    with pytest.raises(ValueError, match="at most 8 modalities.*got 9"):
        measure(chosen, CHOSEN_BATCHES, modalities=names, n_classes=2)


def test_labels_outside_the_classes_are_refused():
    batches = [{"index": torch.tensor([0, 1]), "label": torch.tensor([0, 2])}]

    def undecided(batch, present):
        return torch.zeros(2, 2)

    with pytest.raises(ValueError, match=r"class indices 0\.\.1"):
        measure(undecided, batches, modalities=["a", "b", "c"], n_classes=2)


def test_a_mapping_batch_without_labels_is_refused_naming_its_keys():
    batches = [{"index": torch.tensor([0, 1])}]
    with pytest.raises(ValueError, match=r"without a 'label' key \(keys: \['index'\]\)"):
        measure(chosen, batches, modalities=["a", "b", "c"], n_classes=2)


def test_an_unknown_estimator_is_refused_before_any_prediction():
    with pytest.raises(ValueError, match="unknown estimator 'binned'"):
        measure(chosen, [], modalities=["a", "b", "c"], n_classes=2, estimator="binned")
