"""Run budgets: a config is sized at validation, exactly, and refused naming the field and the limit."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient
from pydantic import ValidationError

from armscope.budget import (
    DEFAULT_MAX_DATA_BYTES,
    DEFAULT_MAX_PARAMETERS,
    Budget,
    BudgetSettingError,
    data_footprint,
    estimate_model,
)
from armscope.config import RunConfig
from armscope.data import DATASETS, build_dataset
from armscope.methods import METHODS, build_method
from armscope.models import ENCODERS, ModelOptions
from armscope.models.base import encoder_sizer
from armscope.train import build_model
from server.app import create_app
from service.settings import Settings
from tests.av_fixtures import make_cremad
from tests.fakes import RecordingQueue

SMALL = {"n_samples": 200, "dims": 8}


def estimate_of(config: RunConfig):
    options = DATASETS.parse_options(config.dataset, config.dataset_options, "dataset_options")
    footprint = data_footprint(options, config.batch_size)
    head = METHODS.get(config.method).factory.head_type
    return footprint, estimate_model(ModelOptions.model_validate(config.model_options), head, footprint)


def built_model(config: RunConfig) -> torch.nn.Module:
    bundle = build_dataset(config.dataset, config.dataset_options, config.seed)
    feature_dim = config.model_options["feature_dim"]
    method = build_method(config.method, config.method_options, bundle.modalities, bundle.n_classes, feature_dim)
    return build_model(bundle, method, config.model_options)


def held(model: torch.nn.Module) -> tuple[int, int]:
    return sum(p.numel() for p in model.parameters()), sum(b.numel() for b in model.buffers())


def error_of(**raw):
    with pytest.raises(ValidationError) as info:
        RunConfig.model_validate(raw)
    (error,) = info.value.errors()
    return error


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"dataset_options": SMALL}, id="arm-mlp-defaults"),
        pytest.param(
            {
                "method": "baseline",
                "dataset_options": {**SMALL, "modalities": ["a", "b", "c"], "dims": [3, 17, 40], "n_classes": 7},
                "model_options": {
                    "feature_dim": 16,
                    "encoder": {"name": "mlp", "hidden": [24, 12]},
                    "encoders": {"b": {"name": "mlp", "hidden": []}},
                },
            },
            id="baseline-three-modalities-with-an-override",
        ),
        pytest.param(
            {"dataset": "uci-mfeat", "dataset_options": {"views": ["fou", "pix", "mor"]}, "method": "ogm-ge"},
            id="ogm-ge-uci-mfeat",
        ),
        pytest.param(
            {"method": "unimodal", "dataset_options": SMALL, "model_options": {"feature_dim": 8}},
            id="unimodal",
        ),
    ],
)
def test_the_estimate_is_exactly_what_the_built_model_holds(raw):
    config = RunConfig.model_validate(raw)
    _, estimate = estimate_of(config)
    parameters, buffers = held(built_model(config))
    assert (estimate.size.parameters, estimate.size.buffers) == (parameters, buffers)
    assert estimate.notes == ()


@pytest.mark.parametrize(("method", "feature_dim"), [("arm", 512), ("baseline", 64)])
def test_the_estimate_of_resnet18_runs_on_cremad_is_exact(tmp_path, method, feature_dim):
    fixture = make_cremad(tmp_path / "cremad", n_train=6, n_test=6, frames=2)
    config = RunConfig.model_validate(
        {
            "dataset": "cremad",
            "dataset_options": {"root": str(fixture.root), "frames": 2, "image_size": 32, "num_workers": 0},
            "method": method,
            "model_options": {"feature_dim": feature_dim, "encoder": {"name": "resnet18"}},
        }
    )
    _, estimate = estimate_of(config)
    parameters, buffers = held(built_model(config))
    assert (estimate.size.parameters, estimate.size.buffers) == (parameters, buffers)
    assert parameters > 2 * 11_000_000  # two ResNet-18 trunks


@pytest.mark.parametrize(
    ("dataset", "options"),
    [
        ("synthetic-shift", {"n_samples": 500, "dims": [5, 9, 12], "modalities": list("abc"), "test_fraction": 0.1}),
        ("uci-mfeat", {"views": ["fac", "zer"]}),
    ],
)
def test_the_data_estimate_of_in_memory_sets_is_exactly_the_bytes_of_their_tensors(dataset, options):
    config = RunConfig.model_validate({"dataset": dataset, "dataset_options": options})
    footprint, _ = estimate_of(config)
    bundle = build_dataset(dataset, config.dataset_options, seed=0)
    splits = [s for s in (bundle.train, bundle.val, bundle.test) if s is not None]
    tensors = [t for s in splits for t in (*s.features.values(), s.labels, getattr(s, "environment", None))]
    assert footprint.memory_bytes == sum(t.nbytes for t in tensors if t is not None)


def test_the_data_estimate_of_a_streamed_set_counts_the_batches_in_flight_at_their_real_size(tmp_path):
    fixture = make_cremad(tmp_path / "cremad", n_train=4, n_test=4, frames=2)
    options = {"root": str(fixture.root), "frames": 2, "image_size": 32, "num_workers": 0}
    config = RunConfig.model_validate({"dataset": "cremad", "dataset_options": options, "batch_size": 4})
    footprint, _ = estimate_of(config)
    bundle = build_dataset("cremad", config.dataset_options, seed=0)
    features, labels = next(iter(bundle.val.batches(4, shuffle=False)))
    assert footprint.memory_bytes == sum(x.nbytes for x in features.values()) + labels.nbytes  # one batch in flight


def greedy_estimate(config: RunConfig):
    """The estimate a greedy config gets from its spec's head, MMTM blocks sized by its own options."""
    options = DATASETS.parse_options(config.dataset, config.dataset_options, "dataset_options")
    footprint = data_footprint(options, config.batch_size)
    model_options = ModelOptions.model_validate(config.model_options)
    return estimate_model(model_options, METHODS.get("greedy").head, footprint, config.parsed_method_options)


@pytest.mark.parametrize("method_options", [{}, {"ratio": 3, "fusion_stages": 1}])
def test_the_estimate_of_a_greedy_run_counts_its_mmtm_blocks_exactly(method_options):
    config = RunConfig.model_validate(
        {
            "method": "greedy",
            "method_options": method_options,
            "dataset_options": SMALL,
            "model_options": {
                "feature_dim": 16,
                "encoder": {"name": "mlp", "hidden": [24, 12]},
                "encoders": {"visual": {"name": "mlp", "hidden": [20]}},
            },
        }
    )
    estimate = greedy_estimate(config)
    assert (estimate.size.parameters, estimate.size.buffers) == held(built_model(config))
    assert estimate.notes == ()


def test_the_estimate_of_a_greedy_run_with_resnet18_encoders_on_cremad_is_exact(tmp_path):
    fixture = make_cremad(tmp_path / "cremad", n_train=6, n_test=6, frames=2)
    config = RunConfig.model_validate(
        {
            "dataset": "cremad",
            "dataset_options": {"root": str(fixture.root), "frames": 2, "image_size": 32, "num_workers": 0},
            "method": "greedy",
            "model_options": {"feature_dim": 64, "encoder": {"name": "resnet18"}},
        }
    )
    estimate = greedy_estimate(config)
    assert (estimate.size.parameters, estimate.size.buffers) == held(built_model(config))


def test_greedy_mmtm_blocks_over_the_parameter_budget_name_the_ratio(monkeypatch):
    # Stages 512, 16 per encoder: the block after the 512s holds 1,024 x 512 + 512 + 2 x (512 x 512 + 512) = 1,050,112.
    monkeypatch.setenv("ARMSCOPE_MAX_PARAMETERS", "400000")
    error = error_of(method="greedy", dataset_options=SMALL,
                     model_options={"feature_dim": 16, "encoder": {"name": "mlp", "hidden": [512]}})
    assert error["loc"] == ("method_options", "ratio")
    assert "concat+mmtm blocks between the encoders' stages" in error["msg"]


def test_every_registered_encoder_can_be_sized():
    for name in ENCODERS.names():
        assert callable(encoder_sizer(name).count)


def test_a_model_over_the_parameter_budget_names_the_encoder_option_the_estimate_and_the_limit(monkeypatch):
    monkeypatch.setenv("ARMSCOPE_MAX_PARAMETERS", "10000")
    error = error_of(dataset_options=SMALL, model_options={"feature_dim": 16, "encoder": {"hidden": [256]}})
    assert error["loc"] == ("model_options", "encoder", "hidden")
    assert "over the limit of 10,000 (ARMSCOPE_MAX_PARAMETERS)" in error["msg"]
    assert "would hold 14,060 parameters and buffers" in error["msg"]
    assert "mlp encoder of 'audio' (input 8): 6,416" in error["msg"]


def test_the_limits_are_read_when_a_config_is_validated(monkeypatch):
    raw = {"dataset_options": SMALL}
    RunConfig.model_validate(raw)
    monkeypatch.setenv("ARMSCOPE_MAX_PARAMETERS", "100")
    with pytest.raises(ValidationError, match="ARMSCOPE_MAX_PARAMETERS"):
        RunConfig.model_validate(raw)


def test_an_oversized_per_modality_encoder_is_named_by_its_override(monkeypatch):
    monkeypatch.setenv("ARMSCOPE_MAX_PARAMETERS", "1000000")
    error = error_of(model_options={"encoders": {"visual": {"name": "mlp", "hidden": [4096, 4096]}}})
    assert error["loc"] == ("model_options", "encoders.visual", "hidden")


def test_a_fusion_head_over_budget_names_feature_dim():
    error = error_of(dataset_options={"modalities": list("abcdefgh")}, model_options={"feature_dim": 8192})
    assert error["loc"] == ("model_options", "feature_dim")
    assert f"over the limit of {DEFAULT_MAX_PARAMETERS:,}" in error["msg"]


def test_generated_data_over_budget_names_the_field_furthest_above_its_default(monkeypatch):
    monkeypatch.setenv("ARMSCOPE_MAX_DATA_BYTES", "1000000")
    more_samples = error_of(dataset_options={"n_samples": 100_000})
    assert more_samples["loc"] == ("dataset_options", "n_samples")
    assert "100,000 x (64 features x 4 bytes + 16 bytes" in more_samples["msg"]
    assert "ARMSCOPE_MAX_DATA_BYTES=1000000" in more_samples["msg"]
    wider = error_of(dataset_options={"n_samples": 4000, "dims": 4096})
    assert wider["loc"] == ("dataset_options", "dims")


def test_an_integral_float_sample_count_is_read_as_that_integer_and_sized_like_it():
    config = RunConfig.model_validate({"dataset_options": {"n_samples": 2e6}})
    assert config.dataset_options["n_samples"] == 2_000_000
    assert isinstance(config.dataset_options["n_samples"], int)
    error = error_of(dataset_options={"n_samples": 2e6, "dims": 65536})
    assert error["loc"] == ("dataset_options", "dims")
    assert "976.6 GiB" in error["msg"] and "over the limit of 8.0 GiB" in error["msg"]


def test_streamed_batches_over_budget_name_the_field_furthest_above_its_default(tmp_path):
    resnet = {"encoder": {"name": "resnet18"}}
    options = {"root": str(tmp_path), "frames": 64, "image_size": 512}
    error = error_of(dataset="cremad", dataset_options=options, batch_size=256, model_options=resnet)
    assert error["loc"] == ("dataset_options", "frames")
    assert "5 batches in flight (num_workers 2 x 2 + 1) x batch_size 256" in error["msg"]
    options = {"root": str(tmp_path), "hop_length": 1, "seconds": 60}
    audio = error_of(dataset="cremad", dataset_options=options, model_options=resnet)
    assert audio["loc"] == ("dataset_options", "hop_length")


def test_sizes_known_only_from_files_are_a_lower_bound_that_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("ARMSCOPE_MAX_PARAMETERS", "1000")
    error = error_of(dataset="features", dataset_options={"root": str(tmp_path)})
    assert "lower bound" in error["msg"] and "only known from the data files" in error["msg"]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"dataset_options": {"n_samples": 2_000_000, "dims": 256}}, id="synthetic-2M-x-256"),
        pytest.param({"dataset_options": {"dims": 65536}}, id="synthetic-widest"),
        pytest.param({"dataset": "uci-mfeat", "dataset_options": {"views": "fou fac kar pix zer mor".split()}},
                     id="uci-all-views"),
        pytest.param(
            {
                "dataset": "cremad",
                "dataset_options": {"root": "cremad", "frames": 2, "num_workers": 4},
                "batch_size": 32,
                "model_options": {"encoder": {"name": "resnet18"}},
            },
            id="cremad-resnet18-gpu-check",
        ),
        pytest.param(
            {
                "dataset": "kinetics-sounds",
                "dataset_options": {"root": "ks", "frames": 3, "num_workers": 8},
                "batch_size": 64,
                "model_options": {"feature_dim": 512, "encoder": {"name": "resnet18"}},
            },
            id="kinetics-sounds-resnet18-arm",
        ),
    ],
)
def test_documented_and_typical_runs_fit_the_default_budget(raw):
    RunConfig.model_validate(raw)


@pytest.mark.parametrize("value", ["lots", "0", "-5", "1.5"])
def test_a_budget_setting_that_is_not_a_positive_whole_number_is_a_server_error_naming_it(monkeypatch, value):
    monkeypatch.setenv("ARMSCOPE_MAX_DATA_BYTES", value)
    with pytest.raises(BudgetSettingError, match="ARMSCOPE_MAX_DATA_BYTES"):
        RunConfig.model_validate({})


def test_unset_budgets_take_the_defaults():
    assert Budget.from_environment({}) == Budget(DEFAULT_MAX_PARAMETERS, DEFAULT_MAX_DATA_BYTES)


# ---------------------------------------------------------------- through the API


@pytest.fixture
def queue():
    return RecordingQueue()


@pytest.fixture
def api(store, queue, tmp_path):
    with TestClient(create_app(Settings(home=tmp_path / "home"), store, queue)) as client:
        yield client


@pytest.mark.parametrize(
    ("body", "loc", "limit"),
    [
        pytest.param({"model_options": {"encoder": {"hidden": [10**12]}}},
                     ["model_options", "encoder", "hidden", 0], "less than or equal to 65536", id="huge-width"),
        pytest.param({"model_options": {"encoder": {"hidden": [1] * 100_000}}},
                     ["model_options", "encoder", "hidden"], "at most 64 items", id="100000-layers"),
        pytest.param({"model_options": {"encoder": {"hidden": [-5]}}},
                     ["model_options", "encoder", "hidden", 0], "greater than or equal to 1", id="negative-width"),
        pytest.param({"dataset_options": {"n_samples": 2e6, "dims": 65536}},
                     ["dataset_options", "dims"], "limit of 8.0 GiB (ARMSCOPE_MAX_DATA_BYTES", id="2e6-x-65536"),
    ],
)
def test_the_api_refuses_oversized_runs_with_422_naming_field_and_limit_storing_nothing(api, queue, body, loc, limit):
    response = api.post("/api/v1/runs", json={"method": "arm", "epochs": 2, **body})
    assert response.status_code == 422
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["body", *loc] and limit in detail["msg"]
    assert api.get("/api/v1/runs").json()["items"] == [] and queue.sent == []
