"""ARM's per-step work (lens, terms, weight updates) as one torch.compile graph (fused kernels on
a GPU), checked with the CPU compiler: the same weights, guards and updates as eager, and a whole
run that logs what the eager run logs."""

import importlib.util
import math

import pytest
import torch

from armscope import arm_terms as arm_terms_module
from armscope.arm_terms import GUARD_NONFINITE, STEP_STATS, arm_step
from armscope.methods import build_method
from armscope.methods.arm import compiles_on
from armscope.models import MultimodalModel, build_encoder
from armscope.models.heads import ARMHead
from armscope.rundir import RunDir
from armscope.train import train

ARGS = dict(ema_decay=0.9, nmi_bins=30, ncmi_bins=2, w_min=0.1, w_max=10.0)


def post_relu_features(seed=0):
    torch.manual_seed(seed)
    return {"audio": torch.relu(torch.randn(32, 16)), "visual": torch.relu(torch.randn(32, 16) * 2)}


def one_step(feats, estimator, compiled):
    """The step's weights and guard, and the head's moving average and the step statistics it left."""
    torch.manual_seed(1)
    head = ARMHead(list(feats), 16, 5)
    labels = torch.randint(0, 5, (32,))
    step_stats = torch.zeros(STEP_STATS, len(feats), dtype=torch.float64)
    weight, guard = arm_step(feats, head, labels, step_stats, estimator=estimator, compiled=compiled, **ARGS)
    return weight, guard, head.eval_weights, step_stats


def both_ways(feats, estimator):
    return one_step(feats, estimator, False), one_step(feats, estimator, True)


@pytest.mark.parametrize("estimator", ["plugin", "debiased", "reference"])
def test_a_compiled_step_gives_the_weights_guard_and_updates_of_the_eager_step(estimator):
    for seed in range(3):
        eager, compiled = both_ways(post_relu_features(seed), estimator)
        # The confidences are float32 softmax means, which the fused kernels round differently.
        for got, expected in zip(compiled, eager, strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)


def test_a_compiled_step_gives_neutral_weights_for_a_non_finite_feature():
    feats = post_relu_features()
    feats["audio"][3, 4] = math.nan
    eager, compiled = both_ways(feats, "plugin")
    assert compiled[0].tolist() == eager[0].tolist() == [1.0, 1.0]
    assert compiled[1].item() == eager[1].item() == GUARD_NONFINITE


def test_a_compiled_step_bins_a_constant_feature_like_eager():
    feats = post_relu_features()
    feats["visual"] = torch.full_like(feats["visual"], 0.25)
    eager, compiled = both_ways(feats, "plugin")
    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-6, atol=0)


def test_a_compiled_step_serves_heads_of_other_runs_and_modality_names_without_recompiling():
    one_step(post_relu_features(), "plugin", True)
    before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    renamed = dict(zip(("left", "right"), post_relu_features(5).values()))
    one_step(renamed, "plugin", True)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == before


def test_auto_compiles_on_cuda_with_triton_on_a_card_triton_supports(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not compiles_on("auto", cpu) and not compiles_on("off", cuda)
    assert compiles_on("on", cpu)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "triton" else None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert compiles_on("auto", cuda)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (6, 0))  # a P100
    assert not compiles_on("auto", cuda)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert not compiles_on("auto", cuda)


def arm_with_failing_compiler(monkeypatch, choice, error=RuntimeError("Triton cannot generate code for this card\n(long traceback)")):
    def failing_compiler():
        def compiled(*args):
            raise error

        return compiled

    monkeypatch.setattr(arm_terms_module, "_compiled_step", failing_compiler)
    method = build_method("arm", {"compile": choice}, ["audio", "visual"], 5, 16)
    encoders = {m: build_encoder({"name": "mlp"}, (8,), 16) for m in ("audio", "visual")}
    model = MultimodalModel(encoders, method.build_head())
    method.begin_epoch(1, 0, 2, torch.device("cpu"))
    method.compiled = True  # what auto or on decides on a GPU
    feats = model.encode({m: torch.randn(32, 8) for m in ("audio", "visual")}, method.encoded_modalities())
    return method, model, feats, torch.randint(0, 5, (32,))


def test_an_automatic_compile_that_fails_runs_the_terms_eagerly_and_says_so(monkeypatch):
    method, model, feats, labels = arm_with_failing_compiler(monkeypatch, "auto")
    loss = method.loss(model, feats, labels, step=0)
    assert torch.isfinite(loss) and not method.compiled
    events = method.end_epoch().events
    assert events[0]["kind"] == "compile_fallback" and events[0]["step"] == 0
    assert "RuntimeError: Triton cannot generate code for this card" in events[0]["message"]
    method.begin_epoch(2, 2, 2, torch.device("cpu"))
    assert not method.compiled and method.end_epoch().events == []  # said once; not tried again


def test_running_out_of_memory_in_the_compiled_step_is_the_runs_failure_not_a_compile_fallback(monkeypatch):
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB.")
    method, model, feats, labels = arm_with_failing_compiler(monkeypatch, "auto", oom)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        method.loss(model, feats, labels, step=0)
    assert method.compiled and method.end_epoch().events == []


def test_a_requested_compile_that_fails_stops_saying_how_to_turn_it_off(monkeypatch):
    method, model, feats, labels = arm_with_failing_compiler(monkeypatch, "on")
    with pytest.raises(RuntimeError, match="set method_options.compile to 'off'"):
        method.loss(model, feats, labels, step=0)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_run_with_compiled_terms_logs_the_weights_of_the_eager_run(tiny_config, tmp_path, precision):
    logged = {}
    for choice in ("off", "on"):
        config = tiny_config(epochs=2, precision=precision, method_options={"compile": choice})
        assert train(config, tmp_path / choice).status == "succeeded"
        logged[choice] = RunDir(tmp_path / choice).metrics()
    for eager, compiled in zip(logged["off"], logged["on"], strict=True):
        for key in ("arm_train_weight.audio", "arm_train_weight.visual", "val_acc", "train_loss"):
            assert compiled[key] == pytest.approx(eager[key], rel=1e-6), key


def test_the_compiled_step_has_room_for_the_configurations_of_a_workers_many_runs():
    # Each (modalities, estimator, precision, bins) is one variant of one function: Dynamo's default
    # of 8 was reached by a worker serving a mixed sweep, and fullgraph then fails every new one.
    one_step(post_relu_features(), "plugin", True)
    assert torch._dynamo.config.recompile_limit >= 64
