import json
import math

import pytest
import torch

from armscope import train as train_module
from armscope.methods import Method
from armscope.rundir import RunDir
from armscope.sinks import Sink
from armscope.train import ResumeError, train
from tests.support import without_timing


class Recorder(Sink):
    def __init__(self):
        self.epochs, self.events, self.progress_calls, self.finished = [], [], [], None

    def progress(self, epoch, step, steps, epochs, loss):
        self.progress_calls.append((epoch, step, steps))

    def phase(self, epoch, what, done, total):
        self.progress_calls.append((epoch, what, done, total))

    def epoch(self, record):
        self.epochs.append(record)

    def event(self, event):
        self.events.append(event)

    def finish(self, status, error):
        self.finished = (status, error)


@pytest.mark.parametrize("method", ["baseline", "unimodal", "ogm", "ogm-ge", "arm"])
def test_every_method_logs_every_measure_of_every_modality(tiny_config, tmp_path, method):
    result = train(tiny_config(method=method, epochs=2), tmp_path / "run")
    assert result.status == "succeeded"
    records = RunDir(tmp_path / "run").metrics()
    assert [r["epoch"] for r in records] == [1, 2]
    record = records[-1]
    for key in ("val_acc", "val_f1", "train_loss", "val_loss", "epoch", "epoch_seconds",
                "samples_per_second", "train_seconds", "dominant", "imbalance"):
        assert key in record
    for m in ("audio", "visual"):
        for measure in ("val_acc", "confidence", "shapley", "nmi", "ncmi", "arm_score", "arm_weight", "grad_norm"):
            value = record[f"{measure}.{m}"]
            assert isinstance(value, float) and math.isfinite(value), f"{measure}.{m}"
    assert ("ogm_ratio.audio" in record) == method.startswith("ogm")
    assert record["dominant"] in ("audio", "visual")


def test_shapley_values_sum_to_fused_minus_empty_accuracy(tiny_config, tmp_path):
    train(tiny_config(method="baseline", epochs=1), tmp_path / "run")
    record = RunDir(tmp_path / "run").metrics()[0]
    # v(empty) is not logged, but it is a fixed fraction: the bias-only prediction.
    assert record["shapley.audio"] + record["shapley.visual"] <= record["val_acc"] + 1e-9


def test_the_same_seed_gives_the_same_numbers(tiny_config, tmp_path):
    train(tiny_config(method="ogm-ge"), tmp_path / "a")
    train(tiny_config(method="ogm-ge"), tmp_path / "b")
    first, second = RunDir(tmp_path / "a").metrics(), RunDir(tmp_path / "b").metrics()
    assert without_timing(first) == without_timing(second)


def test_another_seed_gives_other_numbers(tiny_config, tmp_path):
    train(tiny_config(seed=1, epochs=1), tmp_path / "a")
    train(tiny_config(seed=2, epochs=1), tmp_path / "b")
    assert RunDir(tmp_path / "a").metrics()[0]["val_loss"] != RunDir(tmp_path / "b").metrics()[0]["val_loss"]


def test_the_run_folder_holds_config_metrics_events_and_a_checkpoint(tiny_config, tmp_path):
    train(tiny_config(), tmp_path / "run")
    run = RunDir(tmp_path / "run")
    assert run.read_config()["method"] == "arm"
    assert run.checkpoint_path.exists()
    assert run.events_path.exists()
    assert len(run.metrics()) == 3


def test_resume_after_a_torn_line_ends_with_the_numbers_of_an_uninterrupted_run(tiny_config, tmp_path):
    train(tiny_config(epochs=4), tmp_path / "whole")
    crashed = tmp_path / "crashed"
    train(tiny_config(epochs=2), crashed)
    with open(crashed / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 3, "train_lo')
    result = train(tiny_config(epochs=4), crashed, resume=True)
    assert result.status == "succeeded"
    assert without_timing(RunDir(crashed).metrics()) == without_timing(RunDir(tmp_path / "whole").metrics())


def test_resume_drops_epochs_written_after_the_last_checkpoint(tiny_config, tmp_path):
    train(tiny_config(epochs=3), tmp_path / "whole")
    run = tmp_path / "run"
    train(tiny_config(epochs=2), run)
    lines = (run / "metrics.jsonl").read_text()
    # As if the process died after writing epoch 3's line but before its checkpoint.
    extra = json.loads(lines.splitlines()[-1]) | {"epoch": 3, "val_acc": -1.0}
    (run / "metrics.jsonl").write_text(lines + json.dumps(extra) + "\n")
    train(tiny_config(epochs=3), run, resume=True)
    assert without_timing(RunDir(run).metrics()) == without_timing(RunDir(tmp_path / "whole").metrics())


def test_resume_refuses_a_different_config(tiny_config, tmp_path):
    train(tiny_config(epochs=1), tmp_path / "run")
    with pytest.raises(ResumeError, match="lr"):
        train(tiny_config(epochs=2, lr=0.5), tmp_path / "run", resume=True)


def test_a_new_run_refuses_a_folder_that_holds_one(tiny_config, tmp_path):
    train(tiny_config(epochs=1), tmp_path / "run")
    with pytest.raises(ResumeError, match="--resume"):
        train(tiny_config(epochs=1), tmp_path / "run")


class FifthBatch:
    """A stop request that turns true when asked for the fifth time, counting the times it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.asked >= 5


def test_cancel_is_checked_between_batches(tiny_config, tmp_path):
    sink, cancel = Recorder(), FifthBatch()
    result = train(tiny_config(), tmp_path / "run", sink, should_cancel=cancel)
    assert result.status == "cancelled"
    assert sink.finished == ("cancelled", None)
    assert cancel.asked == 5 and result.epochs_completed == 0


def test_an_interrupt_stops_between_batches_as_interrupted_and_records_no_cancellation(tiny_config, tmp_path):
    sink, interrupt = Recorder(), FifthBatch()
    result = train(tiny_config(), tmp_path / "run", sink, should_interrupt=interrupt)
    assert result.status == "interrupted" and sink.finished == ("interrupted", None)
    assert interrupt.asked == 5
    assert "cancelled" not in [e["kind"] for e in RunDir(tmp_path / "run").events()]


def test_a_loss_that_is_not_finite_fails_the_run_with_a_reason(tiny_config, tmp_path, monkeypatch):
    original = Method.loss

    def diverging_loss(self, model, feats, labels, step):
        loss = original(self, model, feats, labels, step)
        return loss * float("nan") if step >= 12 else loss

    monkeypatch.setattr(Method, "loss", diverging_loss)
    sink = Recorder()
    result = train(tiny_config(method="baseline"), tmp_path / "run", sink)
    assert result.status == "failed"
    assert "not finite" in result.error and "epoch 2" in result.error and "step 12" in result.error
    assert result.epochs_completed == 1
    assert sink.finished[0] == "failed"
    assert any(e["kind"] == "failed" for e in RunDir(tmp_path / "run").events())


def test_running_out_of_gpu_memory_fails_the_run_saying_what_to_lower_and_keeps_what_was_done(
    tiny_config, tmp_path, monkeypatch
):
    original = Method.loss

    def loss_beyond_memory(self, model, feats, labels, step):
        if step >= 12:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\n(details)")
        return original(self, model, feats, labels, step)

    monkeypatch.setattr(Method, "loss", loss_beyond_memory)
    sink = Recorder()
    result = train(tiny_config(method="baseline", epochs=3), tmp_path / "run", sink)
    assert result.status == "failed" and sink.finished == ("failed", result.error)
    assert result.error == (
        "out of GPU memory in epoch 2 (batch_size 64, precision fp32); lower batch_size (or the data set's "
        "image_size or frames), or use precision bf16. torch: CUDA out of memory. Tried to allocate 2.00 GiB."
    )
    assert any(e["kind"] == "failed" for e in RunDir(tmp_path / "run").events())
    assert [r["epoch"] for r in RunDir(tmp_path / "run").metrics()] == [1]
    assert RunDir(tmp_path / "run").load_checkpoint()["state"]["epoch"] == 1


def test_progress_is_reported_every_batch_on_the_cpu(tiny_config, tmp_path):
    sink = Recorder()
    train(tiny_config(epochs=1), tmp_path / "run", sink)
    steps = sink.progress_calls[0][2]
    assert [c[1] for c in sink.progress_calls] == list(range(1, steps + 1))


def test_a_dominance_switch_is_an_event(tiny_config, tmp_path, monkeypatch):
    real_evaluate = train_module.evaluate
    dominants = iter(["audio", "audio", "visual", "audio"])

    def scripted(*args, **kwargs):
        return {**real_evaluate(*args, **kwargs), "dominant": next(dominants)}

    monkeypatch.setattr(train_module, "evaluate", scripted)
    sink = Recorder()
    train(tiny_config(method="baseline", epochs=4), tmp_path / "run", sink)
    switches = [(e["epoch"], e["data"]) for e in sink.events if e["kind"] == "dominance_switch"]
    assert switches == [(3, {"from": "audio", "to": "visual"}), (4, {"from": "visual", "to": "audio"})]
    stored = [e for e in RunDir(tmp_path / "run").events() if e["kind"] == "dominance_switch"]
    assert stored[0]["message"] == "dominance switched from audio to visual at epoch 3"


def test_a_per_modality_encoder_override_replaces_the_default_for_that_modality_only(tiny_config):
    from armscope.data import build_dataset
    from armscope.methods import build_method

    config = tiny_config(model_options={"feature_dim": 16, "encoder": {"name": "mlp", "hidden": [32]},
                                        "encoders": {"visual": {"name": "mlp", "hidden": [8, 8]}}})
    bundle = build_dataset(config.dataset, config.dataset_options, config.seed)
    method = build_method(config.method, config.method_options, bundle.modalities, bundle.n_classes, 16)
    model = train_module.build_model(bundle, method, config.model_options)
    widths = {m: [layer.out_features for layer in model.encoders[m].modules() if hasattr(layer, "out_features")]
              for m in bundle.modalities}
    assert widths["visual"] == [8, 8, 16] and widths["audio"] == [32, 16]


def test_an_encoder_override_for_a_modality_the_data_set_lacks_is_refused_naming_both(tiny_config):
    """Refused when the config is validated, before anything trains (the data set's options name its modalities)."""
    with pytest.raises(ValueError, match=r"unknown modality 'vision'; the data set synthetic-shift has: audio, visual"):
        tiny_config(model_options={"encoders": {"vision": {"name": "mlp"}}})


def test_the_engine_builds_from_the_options_the_config_validated_without_parsing_them_again(
    tiny_config, tmp_path, monkeypatch
):
    config = tiny_config(method="ogm-ge", epochs=1)
    given = {}
    real_method, real_dataset, real_model = train_module.build_method, train_module.build_dataset, train_module.build_model

    def method(name, options, *rest):
        given["method"] = options
        return real_method(name, options, *rest)

    def dataset(name, options, seed):
        given["dataset"] = options
        return real_dataset(name, options, seed)

    def model(bundle, built, options):
        given["model"] = options
        return real_model(bundle, built, options)

    monkeypatch.setattr(train_module, "build_method", method)
    monkeypatch.setattr(train_module, "build_dataset", dataset)
    monkeypatch.setattr(train_module, "build_model", model)
    assert train(config, tmp_path / "run").status == "succeeded"
    assert given["method"] is config.parsed_method_options
    assert given["dataset"] is config.parsed_dataset_options
    assert given["model"] is config.parsed_model_options


def test_a_method_pass_over_the_training_data_reports_its_progress_to_the_sink(tiny_config, tmp_path, monkeypatch):
    def counting_pass(self, data):
        batches = list(data.batches())
        for done in range(1, len(batches) + 1):
            data.progress("counting", done, len(batches))

    monkeypatch.setattr(Method, "epoch_pass", counting_pass)
    sink = Recorder()
    assert train(tiny_config(method="baseline", epochs=1), tmp_path / "run", sink).status == "succeeded"
    phases = [call for call in sink.progress_calls if len(call) == 4]
    assert phases[0] == (1, "counting", 1, 8) and phases[-1] == (1, "counting", 8, 8)


def test_a_method_finds_a_stored_run_s_folder_through_the_resolver_it_was_given(tiny_config, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(Method, "epoch_pass", lambda self, data: seen.append(data.run_folder(7)))
    result = train(tiny_config(method="baseline", epochs=1), tmp_path / "run", run_folder=lambda i: tmp_path / f"r{i}")
    assert result.status == "succeeded" and seen == [tmp_path / "r7"]


def test_a_run_started_without_a_runs_folder_says_it_cannot_read_other_runs(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setattr(Method, "epoch_pass", lambda self, data: data.run_folder(7))
    with pytest.raises(LookupError, match=r"cannot read other runs \(run 7 was asked for\)"):
        train(tiny_config(method="baseline", epochs=1), tmp_path / "run")
