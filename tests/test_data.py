"""Data sets: synthetic-shift, uci-mfeat and features (bring your own)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from armscope.data import DATASETS, DataError, build_dataset
from armscope.data.uci_mfeat import DEFAULT_FILE, VIEW_DIMS


def parse(name: str, options: dict):
    return DATASETS.parse_options(name, options, "dataset_options")


def quadratic_ls_accuracy(bundle, modality: str, environment: int) -> float:
    """Val accuracy of a least-squares classifier on [x, x_i * x_j, 1] within one environment.

    Quadratic features read both linear and sign-flipped (non-linear) signals, so this
    measures how much class information a modality carries there, in closed form.
    """

    def design(split):
        keep = split.environment == environment
        x = split.features[modality][keep].double()
        i, j = torch.triu_indices(x.shape[1], x.shape[1])
        ones = torch.ones(len(x), 1, dtype=torch.float64)
        return torch.cat([x, x[:, i] * x[:, j], ones], dim=1), split.labels[keep]

    x, y = design(bundle.train)
    xv, yv = design(bundle.val)
    targets = torch.nn.functional.one_hot(y, bundle.n_classes).double()
    weights = torch.linalg.lstsq(x, targets).solution
    return ((xv @ weights).argmax(1) == yv).double().mean().item()


# ---------------------------------------------------------------- synthetic-shift


def test_synthetic_default_shapes_and_dtypes():
    b = build_dataset("synthetic-shift", {}, seed=0)
    assert b.modalities == ["audio", "visual"]
    assert b.class_names == [f"class{i}" for i in range(10)]
    assert b.input_shapes == {"audio": (32,), "visual": (32,)}
    assert (len(b.train), len(b.val), b.test) == (3200, 800, None)
    for split in (b.train, b.val):
        for m in b.modalities:
            assert split.features[m].dtype == torch.float32
            assert split.features[m].shape == (len(split), 32)
        assert split.labels.dtype == torch.int64
        assert split.labels.min() >= 0 and split.labels.max() < 10


def python_calls_to_build(name: str, options: dict, seed: int) -> int:
    """How many Python functions building the data set calls (numpy and torch kernels are not Python)."""
    calls = 0

    def count(frame, event, arg) -> None:
        nonlocal calls
        calls += event == "call"

    sys.setprofile(count)
    try:
        build_dataset(name, options, seed=seed)
    finally:
        sys.setprofile(None)
    return calls


def test_synthetic_generation_is_vectorised_a_hundred_times_the_samples_call_no_more_python():
    build_dataset("synthetic-shift", {}, seed=3)  # imports and first-use caches, once
    few = python_calls_to_build("synthetic-shift", {"n_samples": 400}, 3)
    assert python_calls_to_build("synthetic-shift", {"n_samples": 40_000}, 3) == few


def test_synthetic_modality_names_and_per_modality_dims():
    options = {"modalities": ["a", "b", "c"], "dims": [4, 8, 16], "n_classes": 3}
    assert parse("synthetic-shift", options).modality_names() == ["a", "b", "c"]
    b = build_dataset("synthetic-shift", options, seed=0)
    assert b.input_shapes == {"a": (4,), "b": (8,), "c": (16,)}
    assert b.train.features["c"].shape == (len(b.train), 16)
    assert b.n_classes == 3


def test_synthetic_is_deterministic_for_a_seed():
    one = build_dataset("synthetic-shift", {"n_samples": 500}, seed=7)
    two = build_dataset("synthetic-shift", {"n_samples": 500}, seed=7)
    for m in one.modalities:
        assert torch.equal(one.train.features[m], two.train.features[m])
        assert torch.equal(one.val.features[m], two.val.features[m])
    assert torch.equal(one.train.labels, two.train.labels)
    assert torch.equal(one.train.environment, two.train.environment)


def test_synthetic_differs_for_another_seed():
    one = build_dataset("synthetic-shift", {"n_samples": 500}, seed=7)
    two = build_dataset("synthetic-shift", {"n_samples": 500}, seed=8)
    assert not torch.equal(one.train.features["audio"], two.train.features["audio"])


def test_synthetic_does_not_touch_the_global_rng():
    torch.manual_seed(123)
    np.random.seed(123)
    expected = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(123)
    np.random.seed(123)
    build_dataset("synthetic-shift", {"n_samples": 200}, seed=0)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])


def test_synthetic_default_schedule_changes_the_dominant_modality():
    b = build_dataset("synthetic-shift", {"dims": 16}, seed=0)
    envs = b.info["environments"]
    assert [e["dominant"] for e in envs] == ["audio", "visual"]
    acc = {(m, e): quadratic_ls_accuracy(b, m, e) for m in b.modalities for e in range(len(envs))}
    # Environment 0: audio carries the class far better; environment 1: visual does.
    assert acc["audio", 0] > acc["visual", 0] + 0.2
    assert acc["visual", 1] > acc["audio", 1] + 0.05
    # Audio is informative everywhere (it is the one joint training leans on).
    assert min(acc["audio", 0], acc["audio", 1]) > 0.6


def test_synthetic_nonlinear_modality_is_invisible_to_a_linear_readout():
    schedule = [{"strength": {"audio": 0.0, "visual": 5.0}, "nonlinear": ["visual"]}]
    b = build_dataset("synthetic-shift", {"schedule": schedule, "dims": 16}, seed=0)
    x, y = b.train.features["visual"].double(), b.train.labels
    class_means = torch.stack([x[y == k].mean(0) for k in range(b.n_classes)])
    # Sign flips leave every class mean at zero (up to noise of ~1/sqrt(320)).
    assert class_means.abs().max() < 0.35
    assert quadratic_ls_accuracy(b, "visual", 0) > 0.5


def test_synthetic_records_the_environment_of_every_row():
    b = build_dataset("synthetic-shift", {}, seed=0)
    for i, env in enumerate(b.info["environments"]):
        assert int((b.train.environment == i).sum()) == env["n_train"]
        assert int((b.val.environment == i).sum()) == env["n_val"]
        assert env["n_train"] + env["n_val"] == env["n_samples"]
    assert b.train.environment.dtype == torch.int64
    assert len(b.train.environment) == len(b.train)


def test_synthetic_custom_schedule_sets_environment_sizes_and_strengths():
    schedule = [
        {"name": "loud", "weight": 3, "strength": {"audio": 3.0, "visual": 0.5}},
        {"weight": 1, "strength": {"audio": 0.5, "visual": 3.0}, "nonlinear": ["visual"]},
    ]
    b = build_dataset("synthetic-shift", {"schedule": schedule}, seed=0)
    envs = b.info["environments"]
    assert [e["name"] for e in envs] == ["loud", "env1"]
    assert [e["n_samples"] for e in envs] == [3000, 1000]
    assert [e["weight"] for e in envs] == [0.75, 0.25]
    assert envs[1]["strength"] == {"audio": 0.5, "visual": 3.0}
    assert envs[1]["nonlinear"] == ["visual"]
    assert b.info["schedule"] == "custom"


def test_synthetic_classes_are_balanced_within_each_environment():
    b = build_dataset("synthetic-shift", {"n_samples": 1000}, seed=0)
    labels = torch.cat([b.train.labels, b.val.labels])
    envs = torch.cat([b.train.environment, b.val.environment])
    for e in range(2):
        assert torch.bincount(labels[envs == e], minlength=10).tolist() == [50] * 10


@pytest.mark.parametrize("preset", ["shift", "balanced", "static"])
def test_synthetic_presets_build(preset):
    b = build_dataset("synthetic-shift", {"schedule": preset, "n_samples": 300}, seed=0)
    assert b.info["schedule"] == preset
    assert len(b.train) + len(b.val) == 300


def test_synthetic_test_fraction_adds_a_test_split():
    b = build_dataset("synthetic-shift", {"val_fraction": 0.2, "test_fraction": 0.1}, seed=0)
    assert (len(b.train), len(b.val), len(b.test)) == (2800, 800, 400)


def test_synthetic_info_is_json_serialisable():
    json.dumps(build_dataset("synthetic-shift", {"n_samples": 100}, seed=0).info)


GOOD_STRENGTH = {"audio": 1.0, "visual": 1.0}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"schedule": [{"strength": {"audio": 1.0, "video": 1.0}}]}, "unknown modality 'video'"),
        ({"schedule": [{"strength": {"audio": 1.0}}]}, "missing 'visual'"),
        (
            {"schedule": [{"strength": GOOD_STRENGTH, "nonlinear": ["text"]}]},
            "unknown modality 'text'",
        ),
        ({"schedule": [{"strength": GOOD_STRENGTH, "nonlinear": ["audio", "audio"]}]}, "twice"),
        ({"schedule": [{"weight": 0, "strength": GOOD_STRENGTH}]}, "greater than 0"),
        ({"schedule": [{"weight": -1, "strength": GOOD_STRENGTH}]}, "greater than 0"),
        ({"schedule": [{"strength": {"audio": -1.0, "visual": 1.0}}]}, "between 0 and 1000"),
        ({"schedule": [{"strength": GOOD_STRENGTH, "colour": "red"}]}, "colour"),
        ({"schedule": []}, "at least one environment"),
        ({"schedule": "sometimes"}, "'shift', 'balanced' or 'static'"),
        (
            {
                "n_samples": 10,
                "schedule": [
                    {"weight": 1000, "strength": GOOD_STRENGTH},
                    {"weight": 1, "strength": GOOD_STRENGTH},
                ],
            },
            "gets no samples",
        ),
    ],
)
def test_synthetic_bad_custom_schedule_is_rejected(options, message):
    with pytest.raises(ValidationError, match="schedule") as caught:
        parse("synthetic-shift", options)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"modalities": ["audio"]}, "at least 2"),
        ({"modalities": [f"m{i}" for i in range(9)]}, "at most 8"),
        ({"modalities": ["audio", "audio"]}, "repeated: audio"),
        ({"modalities": ["audio", "two words"]}, "must start with a letter"),
        ({"dims": [8, 8, 8]}, "one size per modality"),
        ({"dims": 0}, "between 1 and 65536"),
        ({"n_classes": 1}, "greater than or equal to 2"),
        ({"val_fraction": 0.0}, "greater than 0"),
        ({"val_fraction": 0.6, "test_fraction": 0.4}, "below 1"),
        ({"n_samples": 10, "val_fraction": 0.01}, "empty split"),
        ({"samples": 10}, "unknown option"),
    ],
)
def test_synthetic_bad_options_are_rejected(options, message):
    with pytest.raises(ValidationError) as caught:
        parse("synthetic-shift", options)
    assert message in str(caught.value)


# ---------------------------------------------------------------- uci-mfeat


def test_uci_mfeat_ships_with_the_package():
    assert DEFAULT_FILE.is_file()
    assert DEFAULT_FILE.stat().st_size < 4 * 1024 * 1024


def test_uci_mfeat_default_views_shapes_and_dtypes():
    b = build_dataset("uci-mfeat", {}, seed=0)
    assert b.modalities == ["mor", "fou"]
    assert b.input_shapes == {"mor": (6,), "fou": (76,)}
    assert b.class_names == [str(d) for d in range(10)]
    assert (len(b.train), len(b.val)) == (1600, 400)
    for split in (b.train, b.val):
        assert split.features["mor"].dtype == torch.float32
        assert split.features["fou"].shape == (len(split), 76)
        assert split.labels.dtype == torch.int64


def test_uci_mfeat_views_pick_the_modalities_in_the_given_order():
    views = ["pix", "zer", "kar", "fac", "fou", "mor"]
    assert parse("uci-mfeat", {"views": views}).modality_names() == views
    b = build_dataset("uci-mfeat", {"views": views}, seed=0)
    assert b.modalities == views
    assert b.input_shapes == {v: (VIEW_DIMS[v],) for v in views}
    assert set(b.train.features) == set(views)


def test_uci_mfeat_has_200_images_per_class_and_a_stratified_split():
    b = build_dataset("uci-mfeat", {"val_fraction": 0.25}, seed=0)
    total = torch.bincount(torch.cat([b.train.labels, b.val.labels]), minlength=10)
    assert total.tolist() == [200] * 10
    assert torch.bincount(b.val.labels, minlength=10).tolist() == [50] * 10


def test_uci_mfeat_split_is_fixed_by_the_seed():
    one = build_dataset("uci-mfeat", {"standardize": False}, seed=1)
    two = build_dataset("uci-mfeat", {"standardize": False}, seed=1)
    other = build_dataset("uci-mfeat", {"standardize": False}, seed=2)
    assert torch.equal(one.val.features["fou"], two.val.features["fou"])
    assert not torch.equal(one.val.features["fou"], other.val.features["fou"])


def test_uci_mfeat_standardisation_uses_training_statistics_only():
    raw = build_dataset("uci-mfeat", {"standardize": False}, seed=0)
    std = build_dataset("uci-mfeat", {"standardize": True}, seed=0)
    for view in ("mor", "fou"):
        x_train = raw.train.features[view].double()
        mean, sd = x_train.mean(0), x_train.std(0, unbiased=False)
        sd = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
        expected_val = (raw.val.features[view].double() - mean) / sd
        assert torch.allclose(std.val.features[view].double(), expected_val, atol=1e-4)
        assert torch.allclose(
            std.train.features[view].double().mean(0),
            torch.zeros(1, dtype=torch.float64),
            atol=1e-5,
        )
    # The validation rows are not themselves z-scored.
    assert not torch.allclose(
        std.val.features["fou"].double().mean(0), torch.zeros(1, dtype=torch.float64), atol=1e-3
    )


def test_uci_mfeat_unknown_view_lists_the_valid_views():
    with pytest.raises(ValidationError) as caught:
        parse("uci-mfeat", {"views": ["mor", "colour"]})
    message = str(caught.value)
    assert "unknown view 'colour'" in message
    assert "fou, fac, kar, pix, zer, mor" in message


@pytest.mark.parametrize(
    ("views", "message"),
    [(["mor"], "at least 2"), (["mor", "mor"], "repeated: mor")],
)
def test_uci_mfeat_needs_two_distinct_views(views, message):
    with pytest.raises(ValidationError) as caught:
        parse("uci-mfeat", {"views": views})
    assert message in str(caught.value)


def test_uci_mfeat_missing_file_names_the_file(tmp_path):
    path = tmp_path / "absent.npz"
    with pytest.raises(DataError, match="absent.npz: file not found"):
        build_dataset("uci-mfeat", {"file": str(path)}, seed=0)


def test_uci_mfeat_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(DEFAULT_FILE.read_bytes()[:5000])
    with pytest.raises(DataError, match="broken.npz"):
        build_dataset("uci-mfeat", {"file": str(path)}, seed=0)


def test_uci_mfeat_wrong_view_shape_names_the_file_and_view(tmp_path):
    path = tmp_path / "short.npz"
    labels = np.repeat(np.arange(10), 4)
    np.savez(path, labels=labels, mor=np.zeros((40, 5)), fou=np.zeros((40, 76)))
    with pytest.raises(
        DataError, match=r"short.npz: view 'mor' has shape \(40, 5\), expected \(40, 6\)"
    ):
        build_dataset("uci-mfeat", {"file": str(path)}, seed=0)


# ---------------------------------------------------------------- features


def write_split(folder: Path, split: str, n: int, dims=None, seed: int = 0, **overrides) -> Path:
    """Write <folder>/<split>.npz with modalities 'audio' (dims[0]) and 'visual' (dims[1])."""
    rng = np.random.default_rng(seed)
    dims = dims or (3, 5)
    arrays = {
        "audio": rng.standard_normal((n, dims[0])),
        "visual": rng.standard_normal((n, dims[1])).astype(np.float32),
        "labels": np.arange(n) % 3,
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = folder / f"{split}.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture
def feature_root(tmp_path: Path) -> Path:
    write_split(tmp_path, "train", 12, seed=1)
    write_split(tmp_path, "val", 6, seed=2)
    return tmp_path


def test_features_round_trip(tmp_path):
    train = write_split(tmp_path, "train", 12, seed=1)
    write_split(tmp_path, "val", 6, seed=2)
    write_split(tmp_path, "test", 4, seed=3)
    (tmp_path / "classes.txt").write_text("cat\ndog\nbird\n")
    b = build_dataset("features", {"root": str(tmp_path)}, seed=0)
    assert b.modalities == ["audio", "visual"]
    assert b.class_names == ["cat", "dog", "bird"]
    assert b.input_shapes == {"audio": (3,), "visual": (5,)}
    assert (len(b.train), len(b.val), len(b.test)) == (12, 6, 4)
    with np.load(train) as saved:
        assert np.allclose(b.train.features["audio"].numpy(), saved["audio"])
        assert np.array_equal(b.train.labels.numpy(), saved["labels"])
    assert b.train.features["audio"].dtype == torch.float32
    assert b.train.labels.dtype == torch.int64


def test_features_without_classes_txt_names_classes_by_index(tmp_path):
    write_split(tmp_path, "train", 6, labels=np.array([0, 1, 2, 0, 1, 2]))
    write_split(tmp_path, "val", 3, labels=np.array([4, 0, 1]))
    b = build_dataset("features", {"root": str(tmp_path)}, seed=0)
    assert b.class_names == ["0", "1", "2", "3", "4"]


def test_features_modalities_default_to_all_arrays_sorted(tmp_path):
    write_split(tmp_path, "train", 6, text=np.ones((6, 2)))
    write_split(tmp_path, "val", 3, text=np.ones((3, 2)))
    b = build_dataset("features", {"root": str(tmp_path)}, seed=0)
    assert b.modalities == ["audio", "text", "visual"]


def test_features_modalities_option_picks_a_subset_in_order(tmp_path):
    write_split(tmp_path, "train", 6, text=np.ones((6, 2)))
    write_split(tmp_path, "val", 3)  # val lacks 'text', which is not picked
    options = {"root": str(tmp_path), "modalities": ["visual", "audio"]}
    assert parse("features", options).modality_names() == ["visual", "audio"]
    assert parse("features", {"root": "x"}).modality_names() is None
    b = build_dataset("features", options, seed=0)
    assert b.modalities == ["visual", "audio"]


def test_features_standardize_uses_training_statistics(feature_root):
    b = build_dataset("features", {"root": str(feature_root), "standardize": True}, seed=0)
    x = b.train.features["audio"].double()
    assert torch.allclose(x.mean(0), torch.zeros(1, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(x.std(0, unbiased=False), torch.ones(1, dtype=torch.float64), atol=1e-5)


def test_features_relative_root_is_read_below_armscope_data_root(tmp_path, monkeypatch):
    (tmp_path / "emb").mkdir()
    write_split(tmp_path / "emb", "train", 6)
    write_split(tmp_path / "emb", "val", 3)
    monkeypatch.setenv("ARMSCOPE_DATA_ROOT", str(tmp_path))
    b = build_dataset("features", {"root": "emb"}, seed=0)
    assert b.info["root"] == str(tmp_path / "emb")


def test_features_root_is_a_required_option():
    with pytest.raises(ValidationError, match="dataset_options.root"):
        parse("features", {"standardize": True})


def test_features_missing_root_names_the_folder(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        build_dataset("features", {"root": str(tmp_path / "nowhere")}, seed=0)


def test_features_missing_val_file_names_the_file(tmp_path):
    write_split(tmp_path, "train", 6)
    with pytest.raises(DataError, match=r"val\.npz: file not found"):
        build_dataset("features", {"root": str(tmp_path)}, seed=0)


def test_features_unreadable_npz_names_the_file(feature_root):
    (feature_root / "val.npz").write_bytes(b"not a zip archive at all")
    with pytest.raises(DataError, match=r"val\.npz: cannot read as \.npz"):
        build_dataset("features", {"root": str(feature_root)}, seed=0)


def test_features_npy_content_is_not_an_npz(feature_root):
    with open(feature_root / "val.npz", "wb") as handle:
        np.save(handle, np.zeros(3))
    with pytest.raises(DataError, match=r"val\.npz: not an \.npz archive"):
        build_dataset("features", {"root": str(feature_root)}, seed=0)


def test_features_unknown_modality_option_lists_the_arrays(feature_root):
    options = {"root": str(feature_root), "modalities": ["audio", "depth"]}
    with pytest.raises(
        DataError, match=r"train\.npz: no array for modality 'depth'; arrays there: audio, visual"
    ):
        build_dataset("features", options, seed=0)


@pytest.mark.parametrize(
    ("split", "n", "overrides", "message"),
    [
        ("train", 12, {"labels": None}, r"train\.npz: no 'labels' array"),
        ("train", 12, {"visual": None}, r"train\.npz: needs at least two modality arrays"),
        ("val", 6, {"visual": None}, r"val\.npz: no array 'visual' \(train\.npz has it\)"),
        (
            "val",
            6,
            {"audio": np.zeros((6, 4))},
            r"val\.npz: 'audio' has 4 features per row but train\.npz has 3",
        ),
        ("val", 6, {"audio": np.zeros((5, 3))}, r"val\.npz: 'audio' has 5 rows but 'labels' has 6"),
        ("val", 6, {"audio": np.zeros(6)}, r"val\.npz: 'audio' must be 2-D"),
        (
            "val",
            6,
            {"audio": np.full((6, 3), np.nan)},
            r"val\.npz: 'audio' has 18 non-finite values",
        ),
        (
            "val",
            6,
            {"visual": np.full((6, 5), np.inf)},
            r"val\.npz: 'visual' has 30 non-finite values",
        ),
        ("val", 6, {"audio": np.full((6, 3), 1e300)}, r"beyond float32 range"),
        (
            "val",
            6,
            {"audio": np.array([["a"] * 3] * 6)},
            r"val\.npz: 'audio' must hold real numbers",
        ),
        (
            "val",
            6,
            {"labels": np.array([0, 1, 2, 0, 1, 1.5])},
            r"val\.npz: 'labels' must be whole numbers; row 5",
        ),
        ("val", 6, {"labels": np.array(["a"] * 6)}, r"val\.npz: 'labels' must be integers"),
        (
            "val",
            6,
            {"labels": np.array([0, 1, -1, 0, 1, 2])},
            r"val\.npz: negative label at row 2",
        ),
        (
            "val",
            0,
            {
                "audio": np.zeros((0, 3)),
                "visual": np.zeros((0, 5)),
                "labels": np.zeros(0, dtype=int),
            },
            r"val\.npz: empty split",
        ),
    ],
)
def test_features_bad_file_names_the_file_and_problem(feature_root, split, n, overrides, message):
    write_split(feature_root, split, n, **overrides)
    with pytest.raises(DataError, match=message):
        build_dataset("features", {"root": str(feature_root)}, seed=0)


def test_features_label_outside_classes_txt_is_rejected(feature_root):
    (feature_root / "classes.txt").write_text("cat\ndog\n")  # labels go up to 2
    with pytest.raises(DataError, match=r"train\.npz: the label at row 2 is outside the class list"):
        build_dataset("features", {"root": str(feature_root)}, seed=0)


def test_features_float_labels_with_whole_values_are_accepted(feature_root):
    write_split(feature_root, "val", 3, labels=np.array([0.0, 1.0, 2.0]))
    b = build_dataset("features", {"root": str(feature_root)}, seed=0)
    assert b.val.labels.tolist() == [0, 1, 2]


def test_data_paths_outside_the_data_root_are_rejected_even_through_symlinks(tmp_path, monkeypatch):
    from pydantic import ValidationError

    from armscope.config import RunConfig

    root, outside = tmp_path / "data", tmp_path / "secret"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "inside").mkdir()
    monkeypatch.setenv("ARMSCOPE_DATA_ROOT", str(root))
    for value in (str(outside), "escape", "../secret"):
        with pytest.raises(ValidationError) as info:
            RunConfig.model_validate({"dataset": "features", "dataset_options": {"root": value}})
        assert info.value.errors()[0]["loc"] == ("dataset_options", "root")
        assert "outside ARMSCOPE_DATA_ROOT" in str(info.value)
    assert RunConfig.model_validate({"dataset": "features", "dataset_options": {"root": "inside"}})
    with pytest.raises(ValidationError, match="outside ARMSCOPE_DATA_ROOT"):
        RunConfig.model_validate({"model_options": {"encoders": {"audio": {"name": "resnet18", "weights": "/etc/passwd"}}}})
