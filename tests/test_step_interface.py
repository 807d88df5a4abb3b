"""The method interface: a method may own its step, pass over the data at epoch start, choose the
epoch's samples, keep checkpointed state and predict its own way; runs stay deterministic and resume exactly."""

import pytest
import torch
from torch.nn import functional as F

from armscope.data.base import TensorSplit
from armscope.data.loader_split import LoaderSplit
from armscope.dominance import encode_split, evaluate
from armscope.methods import Method
from armscope.methods.state import MethodStateError
from armscope.models import ConcatHead, MultimodalModel, build_encoder
from armscope.rundir import RunDir
from armscope.step import StepContext, TrainingStep
from armscope.train import train
from tests.step_toys import TOYS, AlternatingSurgery, RunningLoss, WeightedSampler, entropy_fusion, register
from tests.support import trained_model, without_timing

TRAIN_SIZE = 480  # the tiny config's 600 samples, less a fifth held out for validation


def logged(config, folder):
    result = train(config, folder)
    assert result.status == "succeeded", result.error
    return without_timing(RunDir(folder).metrics())


def two_linear_encoders():
    torch.manual_seed(0)
    encoders = {m: torch.nn.Linear(3, 2) for m in ("a", "b")}
    model = MultimodalModel(encoders, ConcatHead(["a", "b"], 2, 2))
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def backward_everywhere(model):
    F.cross_entropy(model.head(model.encode({"a": torch.ones(4, 3), "b": torch.ones(4, 3)})), torch.zeros(4, dtype=torch.long)).backward()


@pytest.mark.parametrize("name", sorted(TOYS))
def test_a_method_on_the_interface_gives_the_same_numbers_for_the_same_seed(name, monkeypatch, tiny_config, tmp_path):
    register(monkeypatch, name, TOYS[name])
    first = logged(tiny_config(method=name, lr=0.1), tmp_path / "a")
    assert first == logged(tiny_config(method=name, lr=0.1), tmp_path / "b")


@pytest.mark.parametrize("name", sorted(TOYS))
def test_a_resumed_run_of_a_method_on_the_interface_ends_with_the_numbers_of_an_uninterrupted_one(
    name, monkeypatch, tiny_config, tmp_path
):
    register(monkeypatch, name, TOYS[name])
    whole = logged(tiny_config(method=name, lr=0.1, epochs=3), tmp_path / "whole")
    logged(tiny_config(method=name, lr=0.1, epochs=1), tmp_path / "resumed")
    train(tiny_config(method=name, lr=0.1, epochs=3), tmp_path / "resumed", resume=True)
    assert without_timing(RunDir(tmp_path / "resumed").metrics()) == whole


def test_the_default_step_runs_the_loss_hook_one_backward_the_gradient_hook_and_one_update():
    calls = []

    class Hooked(Method):
        def loss(self, model, feats, labels, step):
            calls.append(("loss", step, sorted(feats)))
            return super().loss(model, feats, labels, step)

        def after_backward(self, model, step):
            calls.append(("after_backward", step, model.encoders["a"].weight.grad is not None))

    model, optimizer = two_linear_encoders()
    before = model.encoders["a"].weight.detach().clone()
    step = TrainingStep(model, Hooked(None, ["a", "b"], 2, 2), optimizer, torch.device("cpu"))
    step({"a": torch.ones(4, 3), "b": torch.ones(4, 3)}, torch.zeros(4, dtype=torch.long), 7)
    assert calls == [("loss", 7, ["a", "b"]), ("after_backward", 7, True)]
    assert not torch.equal(model.encoders["a"].weight, before)


def test_an_update_of_some_parameters_leaves_the_others_and_their_gradients_as_they_were():
    model, optimizer = two_linear_encoders()
    backward_everywhere(model)
    frozen = model.encoders["b"].weight
    before, grad = frozen.detach().clone(), frozen.grad.clone()
    stepped = model.encoders["a"].weight
    moved_from = stepped.detach().clone()
    StepContext(model, optimizer, torch.device("cpu"), "fp32").update([stepped])
    assert torch.equal(frozen, before) and torch.equal(frozen.grad, grad)
    assert not torch.equal(stepped, moved_from)
    assert frozen not in optimizer.state and stepped in optimizer.state


def test_the_gradient_norms_of_a_step_add_up_over_its_updates():
    model, optimizer = two_linear_encoders()
    backward_everywhere(model)
    context = StepContext(model, optimizer, torch.device("cpu"), "fp32")
    context.update(model.encoders["a"].parameters())
    once = context.norms.clone()
    assert once[0] > 0 and once[1] == 0
    context.update()
    assert context.norms[0] == 2 * once[0] and context.norms[1] > 0


def test_a_step_that_makes_no_update_reports_zero_gradient_norms():
    class Frozen(Method):
        def train_step(self, step, batch):
            return torch.zeros(())

    model, optimizer = two_linear_encoders()
    step = TrainingStep(model, Frozen(None, ["a", "b"], 2, 2), optimizer, torch.device("cpu"))
    _, norms = step({"a": torch.ones(4, 3), "b": torch.ones(4, 3)}, torch.zeros(4, dtype=torch.long), 0)
    assert norms.tolist() == [0.0, 0.0]


def test_an_alternating_step_moves_only_the_head_and_the_encoder_of_the_modality_it_trains():
    method = AlternatingSurgery(None, ["a", "b"], 2, 2)
    model, optimizer = two_linear_encoders()
    method.begin_epoch(1, 0, 2, torch.device("cpu"))
    step = TrainingStep(model, method, optimizer, torch.device("cpu"))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    step({"a": torch.randn(8, 3), "b": torch.randn(8, 3)}, torch.randint(0, 2, (8,)), 1)  # step 1 trains "b"
    moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert moved == {"encoders.b.weight", "encoders.b.bias", "head.fc.weight", "head.fc.bias"}


def test_an_alternating_run_meets_conflicting_gradients_for_its_surgery(monkeypatch, tiny_config, tmp_path):
    register(monkeypatch, "toy-alternating-surgery", AlternatingSurgery)
    records = logged(tiny_config(method="toy-alternating-surgery", lr=0.1), tmp_path / "run")
    assert any(r["toy_conflicts"] > 0 for r in records)


def test_the_epoch_pass_sees_every_training_sample_once_in_order_before_each_epoch(monkeypatch, tiny_config, tmp_path):
    built = register(monkeypatch, "toy-prototypes", TOYS["toy-prototypes"])
    logged(tiny_config(method="toy-prototypes", epochs=2), tmp_path / "run")
    (method,) = built
    assert [epoch for epoch, _ in method.passes] == [1, 2]
    for _, seen in method.passes:
        assert seen.tolist() == list(range(TRAIN_SIZE))


def test_an_epoch_pass_changes_nothing_the_epoch_draws(monkeypatch, tiny_config, tmp_path):
    class Looking(Method):
        def epoch_pass(self, data):
            data.model.eval()
            with torch.no_grad():
                for batch in data.batches():
                    data.model.encode(batch.inputs)

    register(monkeypatch, "toy-looking", Looking)
    looked = logged(tiny_config(method="toy-looking", epochs=2), tmp_path / "looked")
    plain = logged(tiny_config(method="baseline", epochs=2), tmp_path / "plain")
    assert looked == plain


def test_samples_the_sampler_leaves_out_never_reach_a_step(monkeypatch, tiny_config, tmp_path):
    built = register(monkeypatch, "toy-weighted-sampler", WeightedSampler)
    logged(tiny_config(method="toy-weighted-sampler", epochs=2), tmp_path / "run")
    drawn = torch.cat(built[0].drawn)
    assert drawn.numel() == 2 * TRAIN_SIZE
    assert drawn.min() >= TRAIN_SIZE // 10


def test_an_order_longer_than_the_split_makes_an_epoch_of_more_steps(monkeypatch, tiny_config, tmp_path):
    class Twice(Method):
        def sample_order(self, epoch, size, generator):
            return torch.cat([torch.randperm(size, generator=generator), torch.randperm(size, generator=generator)])

    register(monkeypatch, "toy-twice", Twice)
    records = logged(tiny_config(method="toy-twice", epochs=2, batch_size=64), tmp_path / "run")
    assert [r["step"] for r in records] == [15, 30]  # ceil(960 / 64) per epoch
    assert [r["samples_seen"] for r in records] == [960, 1920]


@pytest.mark.parametrize(
    "order, problem",
    [(torch.tensor([0, 480]), "outside the training split's 0..479"), (torch.zeros(3), "not a 1-D torch.float32")],
)
def test_an_order_that_does_not_index_the_training_split_is_refused(order, problem, monkeypatch, tiny_config, tmp_path):
    class Broken(Method):
        def sample_order(self, epoch, size, generator):
            return order

    register(monkeypatch, "toy-broken", Broken)
    with pytest.raises(ValueError, match=problem):
        train(tiny_config(method="toy-broken", epochs=1), tmp_path / "run")


def test_a_chosen_order_is_refused_when_the_split_skipped_some_of_its_samples(monkeypatch, tiny_config, tmp_path):
    register(monkeypatch, "toy-weighted-sampler", WeightedSampler)
    original = TensorSplit.batches

    def skipping_one(self, batch_size, shuffle, generator=None, order=None):
        for inputs, labels in original(self, batch_size, shuffle, generator, order):
            yield {m: x[1:] for m, x in inputs.items()}, labels[1:]

    monkeypatch.setattr(TensorSplit, "batches", skipping_one)
    result = train(tiny_config(method="toy-weighted-sampler", epochs=1), tmp_path / "run")
    assert result.status == "failed" and "turn skip_bad off" in result.error


class Numbered:
    """A keyed dataset whose sample i is the number i."""

    def __len__(self):
        return 6

    def __getitem__(self, key):
        index, _ = key
        return {"x": torch.tensor([float(index)])}, index


def test_a_loader_split_reads_the_order_it_is_given_and_still_draws_its_augmentation_seed():
    split = LoaderSplit(Numbered(), augment=True, num_workers=0, pin_memory=False)
    generator, reference = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    order = torch.tensor([4, 4, 0, 5, 2])
    labels = [y.tolist() for _, y in split.batches(2, shuffle=True, generator=generator, order=order)]
    assert labels == [[4, 4], [0, 5], [2]]
    torch.randint(2**62, (), generator=reference)
    assert torch.equal(generator.get_state(), reference.get_state())


def test_the_checkpoint_holds_the_methods_state(monkeypatch, tiny_config, tmp_path):
    register(monkeypatch, "toy-running-loss", RunningLoss)
    logged(tiny_config(method="toy-running-loss", epochs=2), tmp_path / "run")
    state = RunDir(tmp_path / "run").load_checkpoint()["method"]
    assert state["count"] == 16 and state["kind"] == "running" and len(state["history"]) == 2
    assert state["loss_sum"].dtype == torch.float64


def test_a_state_a_checkpoint_cannot_hold_fails_the_first_save_naming_the_value(monkeypatch, tiny_config, tmp_path):
    class KeepsAGenerator(Method):
        def state_dict(self):
            return {"noise": {"generator": torch.Generator()}}

    register(monkeypatch, "toy-generator", KeepsAGenerator)
    with pytest.raises(MethodStateError, match=r"state_dict\(\)\['noise'\]\['generator'\] is a Generator"):
        train(tiny_config(method="toy-generator", epochs=1), tmp_path / "run")


def test_a_method_that_keeps_no_state_refuses_a_checkpoint_that_holds_some():
    with pytest.raises(ValueError, match="Method keeps no state, but the checkpoint holds count"):
        Method(None, ["a", "b"], 2, 2).load_state_dict({"count": 3})


def test_every_measure_judges_the_methods_prediction():
    split = TensorSplit({"a": torch.randn(40, 3), "b": torch.randn(40, 3)}, torch.arange(40) % 4)
    model = MultimodalModel({m: build_encoder({"name": "mlp"}, (3,), 4) for m in "ab"}, ConcatHead(["a", "b"], 4, 4))

    def always_class_one(feats):
        return torch.tensor([0.0, 5.0, 0.0, 0.0]).expand(feats["a"].shape[0], 4)

    record = evaluate(model, split, batch_size=16, device=torch.device("cpu"), predict=always_class_one)
    assert record["val_acc"] == record["val_acc.a"] == record["val_acc.b"] == 0.25
    assert record["shapley.a"] == record["shapley.b"] == 0.0


def test_a_run_logs_the_accuracy_of_the_methods_test_time_fusion_rule(monkeypatch, tiny_config, tmp_path):
    register(monkeypatch, "toy-entropy-fusion", TOYS["toy-entropy-fusion"])
    config = tiny_config(method="toy-entropy-fusion", epochs=2, lr=0.1)
    last = logged(config, tmp_path / "run")[-1]
    bundle, model = trained_model(config, tmp_path / "run")
    feats, labels = encode_split(model, bundle.val, 128, torch.device("cpu"))
    with torch.no_grad():
        fused = entropy_fusion(model.head.unimodal_logits(feats))
    assert last["val_acc"] == (fused.argmax(1) == labels).double().mean().item()
