"""ARM's per-step work replayed from a CUDA graph (method_options.cuda_graph).

The option's choices and fallbacks are checked here on any machine. What the
graph computes needs a CUDA device: those tests run where one is (the GPU
check in scripts/gpu_check.sh runs this file there) and are skipped elsewhere.
"""

import pytest
import torch

from armscope import graphed as graphed_module
from armscope.arm_terms import STEP_STATS, arm_step, running_scores
from armscope.graphed import GraphedCall
from armscope.methods import build_method
from armscope.methods.arm import graphs_on
from armscope.models import MultimodalModel, build_encoder
from armscope.models.heads import ARMHead
from armscope.rundir import RunDir
from armscope.train import train

needs_cuda = pytest.mark.gpu  # skipped where there is no CUDA device (tests/conftest.py)
SETTINGS = dict(ema_decay=0.9, estimator="plugin", nmi_bins=30, ncmi_bins=2, w_min=0.1, w_max=10.0)


def test_cuda_graph_auto_graphs_on_cuda_only_and_off_never():
    assert graphs_on("auto", torch.device("cuda")) and not graphs_on("auto", torch.device("cpu"))
    assert not graphs_on("off", torch.device("cuda"))


def test_arm_replays_its_step_from_a_cuda_graph_on_cuda_unless_told_otherwise():
    defaults = build_method("arm", {}, ["audio", "visual"], 5, 16).options
    assert defaults.cuda_graph == "auto" and graphs_on(defaults.cuda_graph, torch.device("cuda"))


def test_a_run_asking_for_a_cuda_graph_on_the_cpu_fails_naming_the_option(tiny_config, tmp_path):
    with pytest.raises(ValueError, match="method_options.cuda_graph 'on' needs a CUDA device; this run is on cpu"):
        train(tiny_config(epochs=1, method_options={"cuda_graph": "on"}), tmp_path / "run")


def arm_on_cpu(device=torch.device("cpu")):
    method = build_method("arm", {"cuda_graph": "auto"}, ["audio", "visual"], 5, 16)
    encoders = {m: build_encoder({"name": "mlp"}, (8,), 16) for m in ("audio", "visual")}
    model = MultimodalModel(encoders, method.build_head())
    method.begin_epoch(1, 0, 2, device)
    feats = model.encode({m: torch.randn(32, 8) for m in ("audio", "visual")}, method.encoded_modalities())
    return method, model, feats, torch.randint(0, 5, (32,))


def test_the_step_stats_a_graph_adds_into_is_one_tensor_zeroed_each_epoch():
    # A device with an index, as "cuda" becomes "cuda:0" on the tensors made there.
    method, model, feats, labels = arm_on_cpu(torch.device("cpu", 0))
    kept = method.step_stats
    method.loss(model, feats, labels, step=0)
    assert kept.abs().sum() > 0
    method.end_epoch()
    method.begin_epoch(2, 1, 2, torch.device("cpu", 0))
    assert method.step_stats is kept and kept.abs().sum() == 0


def test_a_graph_that_cannot_be_captured_falls_back_once_and_says_so(monkeypatch):
    method, model, feats, labels = arm_on_cpu()
    method.graphing = True  # what auto decides on a GPU

    def failing_capture(self, inputs):
        raise RuntimeError("operation not permitted when stream is capturing\n(long traceback)")

    monkeypatch.setattr(graphed_module.GraphedCall, "_capture", failing_capture)
    loss = method.loss(model, feats, labels, step=0)
    assert torch.isfinite(loss) and not method.graphing
    events = [e for e in method.end_epoch().events if e["kind"].endswith("_fallback")]
    assert [e["kind"] for e in events] == ["cuda_graph_fallback"] and events[0]["step"] == 0
    assert "RuntimeError: operation not permitted when stream is capturing" in events[0]["message"]
    method.begin_epoch(2, 2, 2, torch.device("cpu"))
    assert not method.graphing  # not tried again


def twin_heads(running: bool = False):
    """Two identical ARM heads, step statistics and (with ``running``) score averages on the GPU: one stepped
    directly, one from a graph."""
    made = []
    for _ in range(2):
        torch.manual_seed(3)
        step_stats = torch.zeros(STEP_STATS, 2, dtype=torch.float64, device="cuda")
        average = running_scores(2, "cuda") if running else None
        made.append((ARMHead(["audio", "visual"], 64, 6).cuda(), step_stats, average))
    return made


def random_batch(batch, seed, dtype=torch.float32):
    torch.manual_seed(seed)
    feats = [torch.relu(torch.randn(batch, 64, device="cuda")).to(dtype) for _ in range(2)]
    return feats, torch.randint(0, 6, (batch,), device="cuda")


@needs_cuda
@pytest.mark.parametrize("weighting", ["step", "running"])
@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_graphed_arm_step_gives_the_weights_and_updates_of_the_direct_step(compiled, precision, weighting):
    direct, graph = twin_heads(running=weighting == "running")

    def step(twin, feats, labels):
        head, step_stats, average = twin
        return arm_step(dict(zip(["audio", "visual"], feats)), head, labels, step_stats, compiled=compiled,
                        running=average, **SETTINGS)

    state = [t for t in (graph[0].eval_weights, *graph[1:]) if t is not None]
    graphed = GraphedCall(lambda *t: step(graph, t[:2], t[2]), state)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16")
    for seed in range(4):  # the first call captures; the graph must not have moved any state
        feats, labels = random_batch(48, seed, torch.bfloat16 if precision == "bf16" else torch.float32)
        with autocast:
            expected = step(direct, feats, labels)
            got = graphed(*feats, labels)
        for g, e in zip(got, expected, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-6, atol=0)
        torch.testing.assert_close(graph[0].eval_weights, direct[0].eval_weights, rtol=1e-6, atol=0)
        torch.testing.assert_close(graph[1:], direct[1:], rtol=1e-6, atol=0)
    assert len(graphed.graphs) == 1


@needs_cuda
def test_each_batch_size_gets_its_own_graph_and_the_last_partial_batch_is_right():
    (direct_head, direct_sum, _), (graph_head, graph_sum, _) = twin_heads()

    def step(head, step_stats, feats, labels):
        return arm_step(dict(zip(["audio", "visual"], feats)), head, labels, step_stats, **SETTINGS)

    graphed = GraphedCall(lambda *t: step(graph_head, graph_sum, t[:2], t[2]), [graph_head.eval_weights, graph_sum])
    for seed, batch in enumerate([48, 48, 17, 48]):
        feats, labels = random_batch(batch, seed)
        expected = step(direct_head, direct_sum, feats, labels)
        torch.testing.assert_close(graphed(*feats, labels)[0], expected[0], rtol=1e-6, atol=0)
    assert len(graphed.graphs) == 2
    torch.testing.assert_close(graph_sum, direct_sum, rtol=1e-6, atol=0)


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_run_with_a_cuda_graph_logs_the_weights_of_a_run_without(tiny_config, tmp_path, precision):
    logged = {}
    for choice in ("off", "on"):
        options = {"cuda_graph": choice, "compile": "on"}
        config = tiny_config(epochs=2, device="cuda", precision=precision, method_options=options)
        assert train(config, tmp_path / choice).status == "succeeded"
        assert not [e for e in RunDir(tmp_path / choice).events() if e["kind"].endswith("_fallback")]
        logged[choice] = RunDir(tmp_path / choice).metrics()
    for without, with_graph in zip(logged["off"], logged["on"], strict=True):
        for key in ("arm_train_weight.audio", "arm_train_weight.visual", "val_acc", "train_loss"):
            assert with_graph[key] == pytest.approx(without[key], rel=1e-5), key


def test_running_out_of_memory_while_capturing_is_the_runs_failure_not_a_graph_fallback(monkeypatch):
    method, model, feats, labels = arm_on_cpu()
    method.graphing = True

    def capture_beyond_memory(self, inputs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB.")

    monkeypatch.setattr(graphed_module.GraphedCall, "_capture", capture_beyond_memory)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        method.loss(model, feats, labels, step=0)
    assert method.graphing and method.end_epoch().events == []
