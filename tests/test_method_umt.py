"""UMT (Du et al., ICML 2023): the distillation loss, frozen teachers, teachers trained here or loaded, a short run.

METHODS.md's worked example (Part B, section 1), checked by hand: B = 1, D = 2, y = 0.
MSE(h_a, t_a) = ((0 - 1)^2 + (0 - 2)^2) / 2 = 2.5 and MSE(h_v, t_v) = ((1 - 0)^2 + (1 - 0)^2) / 2 = 1.0,
so lambda * (2.5 + 1.0) = 35 for lambda = 10. CE([1, 0], 0) = -ln(e / (e + 1)) = ln(1 + e^-1) = 0.313262,
so L = 35.313262. dL/dh_a = lambda * 2 (h_a - t_a) / (B * D) = 10 * (h_a - t_a) = [-10, -20];
dL/dh_v = 10 * (h_v - t_v) = [10, 10].
"""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from torch import Tensor, nn

from armscope.builtin.methods.umt import UMTOptions
from armscope.data.base import TensorSplit
from armscope.epoch_pass import TrainingData
from armscope.methods.umt import UMT, feature_cosine, feature_mse, umt_loss
from armscope.models.heads import MultimodalModel
from armscope.rundir import RunDir
from armscope.sinks import Sink
from armscope.step import Batch, StepContext
from armscope.train import train

pytestmark = pytest.mark.unit

CE_EXAMPLE = math.log(1 + math.exp(-1))  # 0.313262


class Constant(nn.Module):
    """A teacher whose features are ``value`` whatever the input: the example's t_m."""

    def __init__(self, value: list[float]) -> None:
        super().__init__()
        self.register_buffer("value", torch.tensor([value]))

    def forward(self, x: Tensor) -> Tensor:
        return self.value.expand(x.shape[0], -1)


class Phases(Sink):
    """Records the method passes a run reports: (epoch, what, done, total)."""

    def __init__(self) -> None:
        self.phases: list[tuple[int, str, int, int]] = []

    def phase(self, epoch: int, what: str, done: int, total: int) -> None:
        self.phases.append((epoch, what, done, total))


def umt(**options: object) -> UMT:
    return UMT(UMTOptions.model_validate(options), ["audio", "visual"], 2, 2)


def identity_linear() -> nn.Linear:
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(2))
        layer.bias.zero_()
    return layer


def example_step(method: UMT, epoch: int = 1) -> tuple[Tensor, MultimodalModel]:
    """One step on the worked example: identity encoders (h = x) and a head whose logits are [1, 0] whatever h."""
    model = MultimodalModel({"audio": identity_linear(), "visual": identity_linear()}, method.build_head())
    head = model.head.fc
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([1.0, 0.0]))
    example = {"audio": Constant([1.0, 2.0]), "visual": Constant([0.0, 0.0])}
    method.teachers = {m: example[m] for m in method.sources}
    method.begin_epoch(epoch, 0, 1, torch.device("cpu"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = Batch({"audio": torch.tensor([[0.0, 0.0]]), "visual": torch.tensor([[1.0, 1.0]])}, torch.tensor([0]), 0)
    loss = method.train_step(StepContext(model, optimizer, torch.device("cpu"), "fp32"), batch)
    return loss, model


def test_the_worked_example_loss_is_cross_entropy_plus_lambda_times_the_summed_feature_mse():
    h_a, h_v = torch.tensor([[0.0, 0.0]], requires_grad=True), torch.tensor([[1.0, 1.0]], requires_grad=True)
    distances = torch.stack([feature_mse(h_a, torch.tensor([[1.0, 2.0]])), feature_mse(h_v, torch.zeros(1, 2))])
    assert distances.tolist() == [2.5, 1.0]
    loss = umt_loss(torch.tensor(CE_EXAMPLE), distances, 10.0)
    assert loss.item() == pytest.approx(35.313262, abs=1e-6)
    loss.backward()
    assert h_a.grad.tolist() == [[-10.0, -20.0]] and h_v.grad.tolist() == [[10.0, 10.0]]


def test_the_step_on_the_worked_example_gives_its_loss_and_its_feature_gradients():
    loss, model = example_step(umt(distill_weight=10))
    assert loss.item() == pytest.approx(35.313262, abs=1e-6)
    # The head's weights are zero, so the cross-entropy sends h nothing: each encoder's bias gradient is dL/dh_m.
    assert model.encoders["audio"].bias.grad.tolist() == [-10.0, -20.0]
    assert model.encoders["visual"].bias.grad.tolist() == [10.0, 10.0]


def test_a_modality_without_a_teacher_adds_no_distillation_term():
    loss, model = example_step(umt(teachers={"audio": "train"}))
    assert loss.item() == pytest.approx(CE_EXAMPLE + 10 * 2.5)  # 25.313262: audio's term alone
    assert model.encoders["visual"].bias.grad.tolist() == [0.0, 0.0]


def test_outside_the_modulation_window_the_step_is_plain_cross_entropy():
    loss, model = example_step(umt(modulation_start=2), epoch=1)
    assert loss.item() == pytest.approx(CE_EXAMPLE)
    assert model.encoders["audio"].bias.grad.tolist() == [0.0, 0.0]


def test_the_window_is_one_based_and_inclusive():
    window = UMTOptions(modulation_start=2, modulation_end=3)
    assert [window.modulates(e) for e in (1, 2, 3, 4)] == [False, True, True, False]
    assert UMTOptions().modulates(100)


def test_the_mse_averages_over_batch_and_features_and_gives_the_teacher_no_gradient():
    student = torch.tensor([[0.0, 0.0], [2.0, 2.0]], requires_grad=True)
    teacher = torch.zeros(2, 2, requires_grad=True)
    distance = feature_mse(student, teacher)
    assert distance.item() == 2.0  # (0 + 0 + 4 + 4) / 4
    distance.backward()
    assert teacher.grad is None and student.grad.tolist() == [[0.0, 0.0], [1.0, 1.0]]  # 2 (h - t) / 4


def test_the_cosine_is_the_batch_mean_of_each_samples_cosine():
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    teacher = torch.tensor([[3.0, 0.0], [1.0, 0.0]])  # the same direction (1), then orthogonal (0)
    assert feature_cosine(student, teacher).item() == pytest.approx(0.5)


def small_run(method: UMT) -> tuple[MultimodalModel, TrainingData]:
    torch.manual_seed(0)
    encoders = {m: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)) for m in method.modalities}
    model = MultimodalModel(encoders, method.build_head())
    inputs = {m: torch.randn(8, 3) for m in method.modalities}
    data = TrainingData(TensorSplit(inputs, torch.randint(0, 2, (8,))), model, epoch=1, step=0, batch_size=4,
                        device=torch.device("cpu"), precision="fp32", channels_last=False)
    return model, data


def test_the_teachers_are_frozen_in_eval_mode_and_a_step_changes_neither_them_nor_their_statistics():
    method = UMT(UMTOptions(teacher_epochs=2), ["audio", "visual"], 2, 4)
    model, data = small_run(method)
    method.epoch_pass(data)
    model.train()
    assert method.teachers is not None
    before = {m: {k: v.clone() for k, v in t.state_dict().items()} for m, t in method.teachers.items()}
    method.begin_epoch(1, 0, 1, torch.device("cpu"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = Batch({m: torch.randn(4, 3) for m in method.modalities}, torch.tensor([0, 1, 0, 1]), 0)
    method.train_step(StepContext(model, optimizer, torch.device("cpu"), "fp32"), batch)
    for m, teacher in method.teachers.items():
        assert not teacher.training
        assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
        after = teacher.state_dict()  # BatchNorm's running statistics included
        assert all(torch.equal(after[k], v) for k, v in before[m].items())
        assert teacher is not model.encoders[m]


def test_the_in_run_teachers_train_in_epoch_1_only_and_a_resume_does_not_train_them_again(tiny_config, tmp_path):
    options = {"teacher_epochs": 2}
    sink = Phases()
    assert train(tiny_config(method="umt", method_options=options, epochs=2), tmp_path / "run", sink).status == "succeeded"
    # Two teacher epochs, then the pass measuring the teachers' training accuracy.
    assert sink.phases == [(1, "teachers", 1, 3), (1, "teachers", 2, 3), (1, "teachers", 3, 3)]
    resumed = Phases()
    result = train(tiny_config(method="umt", method_options=options, epochs=3), tmp_path / "run", resumed, resume=True)
    assert result.status == "succeeded" and resumed.phases == []
    records = RunDir(tmp_path / "run").metrics()
    assert len({r["umt_teacher_acc.audio"] for r in records}) == 1
    (event,) = [e for e in RunDir(tmp_path / "run").events() if e["kind"] == "umt_teachers"]
    assert event["epoch"] == 1 and "audio: trained here for 2 epochs" in event["message"]


def unimodal_run(tiny_config, folder, modality="audio", **overrides):
    config = tiny_config(method="unimodal", method_options={"modality": modality}, epochs=1, **overrides)
    assert train(config, folder).status == "succeeded"
    return folder


def test_a_teacher_is_loaded_from_a_unimodal_run_and_a_modality_without_one_is_not_distilled(tiny_config, tmp_path):
    folder = unimodal_run(tiny_config, tmp_path / "teacher")
    config = tiny_config(method="umt", method_options={"teachers": {"audio": 7}}, epochs=2)
    result = train(config, tmp_path / "run", run_folder=lambda run_id: folder)
    assert result.status == "succeeded", result.error
    stored = RunDir(folder).load_checkpoint()["model"]
    teacher = RunDir(tmp_path / "run").load_checkpoint()["method"]["teachers"]
    assert set(teacher) == {"audio"}
    assert all(torch.equal(v, stored[f"encoders.audio.{k}"]) for k, v in teacher["audio"].items())
    for record in RunDir(tmp_path / "run").metrics():
        assert 0 < record["umt_teacher_acc.audio"] <= 1 and record["umt_mse.audio"] >= 0
        assert all(math.isnan(record[f"umt_{k}.visual"]) for k in ("mse", "cosine", "teacher_acc"))


@pytest.mark.parametrize(
    ("teacher", "message"),
    [
        ({"modality": "visual"}, "teacher run 7 for 'audio': its method_options.modality is 'visual', this run's "
                                 "teacher needs 'audio'"),
        ({"model_options": {"feature_dim": 8, "encoder": {"name": "mlp", "hidden": [32]}}},
         "teacher run 7 for 'audio': its model_options.feature_dim is 8, this run's teacher needs 16"),
        ({"model_options": {"feature_dim": 16, "encoder": {"name": "mlp", "hidden": [24]}}},
         r"teacher run 7 for 'audio': its encoder \(model_options \{'name': 'mlp', 'hidden': \[24\].*\) or the "
         r"data set's input size differs from this run's: 1.weight has shape \(24, 8\) there, \(32, 8\) in this run"),
    ],
)
def test_a_teacher_run_that_does_not_fit_is_refused_naming_the_run_the_field_and_both_values(
    tiny_config, tmp_path, teacher, message
):
    folder = unimodal_run(tiny_config, tmp_path / "teacher", **teacher)
    config = tiny_config(method="umt", method_options={"teachers": {"audio": 7}}, epochs=1)
    with pytest.raises(ValueError, match=message):
        train(config, tmp_path / "run", run_folder=lambda run_id: folder)


def test_a_teacher_run_on_another_data_set_is_refused_naming_both(tiny_config, tmp_path):
    views = {"views": ["fou", "kar"]}
    folder = unimodal_run(tiny_config, tmp_path / "teacher", modality="fou", dataset="uci-mfeat", dataset_options=views)
    config = tiny_config(method="umt", method_options={"teachers": {"fou": 7}}, epochs=1,
                         dataset_options={"n_samples": 600, "dims": 8, "modalities": ["fou", "kar"]})
    with pytest.raises(ValueError, match="its dataset is 'uci-mfeat', this run's teacher needs 'synthetic-shift'"):
        train(config, tmp_path / "run", run_folder=lambda run_id: folder)


def test_a_run_of_another_method_is_refused_as_a_teacher(tiny_config, tmp_path):
    assert train(tiny_config(method="baseline", epochs=1), tmp_path / "teacher").status == "succeeded"
    config = tiny_config(method="umt", method_options={"teachers": {"visual": 3}}, epochs=1)
    with pytest.raises(ValueError, match="teacher run 3 for 'visual': its method is 'baseline'"):
        train(config, tmp_path / "run", run_folder=lambda run_id: tmp_path / "teacher")


def test_teachers_name_only_modalities_of_the_data_set_and_train_or_a_run_id(tiny_config):
    with pytest.raises(ValidationError, match="'text' is not a modality of this data set"):
        tiny_config(method="umt", method_options={"teachers": {"text": "train"}})
    with pytest.raises(ValidationError, match="teachers"):
        tiny_config(method="umt", method_options={"teachers": {"audio": "trian"}})
    with pytest.raises(ValidationError, match="teachers"):
        tiny_config(method="umt", method_options={"teachers": {"audio": 0}})
    options = UMTOptions.model_validate({"teachers": {"visual": 4, "audio": "train"}})
    assert options.teacher_sources(["audio", "visual", "text"]) == {"audio": "train", "visual": 4}
    assert UMTOptions().teacher_sources(["audio", "visual"]) == {"audio": "train", "visual": "train"}


def test_a_short_run_logs_the_distances_the_teachers_accuracy_and_the_cross_entropy_every_epoch(tiny_config, tmp_path):
    config = tiny_config(method="umt", method_options={"teacher_epochs": 5}, epochs=2)
    assert train(config, tmp_path / "run").status == "succeeded"
    records = RunDir(tmp_path / "run").metrics()
    modalities = config.dataset_options["modalities"]
    assert len(records) == 2
    for record in records:
        assert 0 < record["umt_ce"] < record["train_loss"]  # the distillation term comes on top
        for m in modalities:
            assert record[f"umt_mse.{m}"] > 0 and -1 <= record[f"umt_cosine.{m}"] <= 1
            assert 0 <= record[f"umt_teacher_acc.{m}"] <= 1
    for m in modalities:
        # The distillation pulls the features towards the teacher's; the teacher is measured once.
        assert records[1][f"umt_mse.{m}"] < records[0][f"umt_mse.{m}"]
        assert records[1][f"umt_teacher_acc.{m}"] == records[0][f"umt_teacher_acc.{m}"]
