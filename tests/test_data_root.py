"""ARMSCOPE_DATA_ROOT confines every file a loader opens, and errors never show what a file holds.

The attack: someone who can write to a data set folder plants symbolic links to files
outside the data root (a secret), then reads the run's error or trains on the secret.
Every test plants the links for real and checks the message names the path relative to
the data root, with neither the secret's content nor any absolute path in it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from av_fixtures import link, make_av_folder, make_cremad, make_kinetics_sounds, write_frames, write_spectrogram
from fastapi.testclient import TestClient
from pydantic import ValidationError

from armscope.config import RunConfig
from armscope.data import DataError, build_dataset
from armscope.data.paths import OutsideDataRoot
from armscope.models import build_encoder
from armscope.models.resnet import ResNet18, load_weights
from armscope.rundir import RunDir
from armscope.train import train
from server.app import create_app
from service.settings import Settings
from tests.fakes import RecordingQueue

# Characters no message of armscope's own contains: any run of three of them in a message
# (or the leading "~", what a one-byte quote such as pickle's "invalid load key" shows) is a leak.
SECRET = "~QZX7|s3kr1t|VWJ9~"
SMALL = {"image_size": 16, "frames": 1, "num_workers": 0}


def assert_reveals_nothing(message: str, tmp_path: Path) -> None:
    assert "~" not in message
    assert not any(SECRET[i : i + 3] in message for i in range(len(SECRET) - 2)), message
    assert str(tmp_path) not in message, message  # no absolute path, inside the root or out


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """The data root, set in the environment; a secret lies next to it, outside."""
    data = tmp_path / "data"
    data.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n")
    monkeypatch.setenv("ARMSCOPE_DATA_ROOT", str(data))
    return data


def secret(root: Path) -> Path:
    return root.parent / "outside" / "secret.txt"


def make_features(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 12), ("val", 6)):
        np.savez(
            folder / f"{split}.npz",
            audio=rng.standard_normal((n, 3)),
            visual=rng.standard_normal((n, 4)),
            labels=np.arange(n) % 3,
        )
    return folder


def make_av_folder_pkl(folder: Path) -> None:
    make_av_folder(folder, audio="pkl")


def load_everything(dataset: str, folder: Path, **options) -> None:
    """Build the data set and read every split once, as a run would."""
    bundle = build_dataset(dataset, {"root": str(folder), **options}, seed=0)
    for split in (bundle.train, bundle.val, bundle.test):
        if split is not None:
            for _ in split.batches(4, shuffle=False):
                pass


def loading_error(dataset: str, folder: Path, expected: type[DataError] = DataError) -> DataError:
    av_options = {} if dataset == "features" else SMALL
    with pytest.raises(expected) as info:
        load_everything(dataset, folder, **av_options)
    return info.value


def tiny_run(folder: Path) -> RunConfig:
    return RunConfig.model_validate(
        {
            "dataset": "av-folder",
            "dataset_options": {"root": str(folder), **SMALL},
            "method": "arm",
            "epochs": 1,
            "batch_size": 4,
            "model_options": {"feature_dim": 8, "encoder": {"name": "mlp", "hidden": [8]}},
            "device": "cpu",
        }
    )


# ---------------------------------------------------------------- links leading outside


@pytest.mark.parametrize(
    ("dataset", "make", "planted"),
    [
        ("av-folder", make_av_folder, "manifest.csv"),
        ("cremad", make_cremad, "train.csv"),
        ("kinetics-sounds", make_kinetics_sounds, "val_list.txt"),
        ("kinetics-sounds", make_kinetics_sounds, "spec/train/ks_train_0000.npy"),
        ("features", make_features, "train.npz"),
        ("features", make_features, "classes.txt"),
    ],
)
def test_a_list_or_array_linked_outside_the_data_root_is_refused_naming_its_relative_path(
    root, dataset, make, planted
):
    make(root / "set")
    link(root / "set" / planted, secret(root))
    error = loading_error(dataset, root / "set", OutsideDataRoot)
    assert str(error) == f"set/{planted}: refused, it leads outside ARMSCOPE_DATA_ROOT (symbolic links followed)"
    assert_reveals_nothing(str(error), root.parent)


# Evaluation reads the middle one of a clip's three frames: frame_00001.
@pytest.mark.parametrize(
    ("dataset", "make", "planted"),
    [
        ("cremad", make_cremad, "AudioWAV/1004_DFA_FEA_XX.wav"),
        ("cremad", make_cremad, "Image-01-FPS/1092_DFA_HAP_XX/frame_00001.jpg"),
        ("av-folder", make_av_folder_pkl, "audio/val-001.pkl"),
    ],
)
def test_an_audio_file_or_frame_linked_outside_is_refused_when_its_clip_is_read(root, dataset, make, planted):
    make(root / "set")
    link(root / "set" / planted, secret(root))
    error = loading_error(dataset, root / "set")  # read in the loader: a plain DataError carries it
    assert str(error).startswith(f"set/{planted}: refused, it leads outside ARMSCOPE_DATA_ROOT")
    assert_reveals_nothing(str(error), root.parent)


def test_a_frame_folder_linked_outside_is_refused_before_it_is_listed(root):
    make_av_folder(root / "set", audio="npy")
    write_frames(root.parent / "outside" / "frames", count=2)
    link(root / "set" / "frames" / "train-002", root.parent / "outside" / "frames")
    error = loading_error("av-folder", root / "set", OutsideDataRoot)
    assert str(error) == "set/frames/train-002: refused, it leads outside ARMSCOPE_DATA_ROOT (symbolic links followed)"


def test_a_run_fed_a_spectrogram_from_outside_fails_instead_of_training_on_it(root, tmp_path):
    make_av_folder(root / "set", audio="npy")
    write_spectrogram(root.parent / "outside" / "stolen.npy")  # the right shape: it would train
    link(root / "set" / "audio" / "train-004.npy", root.parent / "outside" / "stolen.npy")
    result = train(tiny_run(root / "set"), tmp_path / "run")
    assert result.status == "failed"
    assert result.error.startswith("set/audio/train-004.npy: refused, it leads outside ARMSCOPE_DATA_ROOT")
    events = [e for e in RunDir(tmp_path / "run").events() if e["kind"] == "failed"]
    assert [e["message"] for e in events] == [result.error]
    assert str(tmp_path) not in result.error


def test_encoder_weights_linked_outside_are_refused(root):
    torch.save(ResNet18(in_channels=3).state_dict(), root.parent / "outside" / "weights.pt")
    link(root / "weights.pt", root.parent / "outside" / "weights.pt")
    encoders = {"visual": {"name": "resnet18", "weights": "weights.pt"}}
    with pytest.raises(ValidationError, match="outside ARMSCOPE_DATA_ROOT") as info:
        RunConfig.model_validate({"model_options": {"encoders": encoders}})
    assert_reveals_nothing(str(info.value), root.parent)
    with pytest.raises(OutsideDataRoot):  # a link planted after the config was accepted
        load_weights(ResNet18(in_channels=3), "weights.pt")


def test_links_that_stay_inside_the_data_root_are_followed(root):
    make_av_folder(root / "set", audio="npy")
    (root / "shared").mkdir()
    (root / "set" / "manifest.csv").rename(root / "shared" / "manifest.csv")
    link(root / "set" / "manifest.csv", root / "shared" / "manifest.csv")
    (root / "set" / "frames" / "train-001").rename(root / "shared" / "train-001")
    link(root / "set" / "frames" / "train-001", root / "shared" / "train-001")
    load_everything("av-folder", root / "set", **SMALL)


def test_the_uci_mfeat_data_armscope_ships_still_loads_under_a_data_root(root):
    assert len(build_dataset("uci-mfeat", {}, seed=0).train) > 0


def test_without_a_data_root_links_are_followed_as_before(root, monkeypatch):
    monkeypatch.delenv("ARMSCOPE_DATA_ROOT")
    make_av_folder(root / "set", audio="npy")
    (root / "set" / "manifest.csv").rename(root.parent / "outside" / "manifest.csv")
    link(root / "set" / "manifest.csv", root.parent / "outside" / "manifest.csv")
    load_everything("av-folder", root / "set", **SMALL)


# ---------------------------------------------------------------- errors quote no content


@pytest.mark.parametrize(
    ("dataset", "make", "damaged", "content"),
    [
        ("av-folder", make_av_folder, "manifest.csv", SECRET + "\n"),
        ("av-folder", make_av_folder, "manifest.csv", f"clip,label,split\ntrain-000,dog,{SECRET}\n"),
        ("av-folder", make_av_folder, "manifest.csv", f"clip,label,split\n{SECRET}/x,dog,train\n"),
        ("cremad", make_cremad, "train.csv", f"1001_DFA_NEU_XX,{SECRET}\n"),
        ("cremad", make_cremad, "train.csv", f"{SECRET},NEU,extra\n"),
        ("kinetics-sounds", make_kinetics_sounds, "train_list.txt", SECRET + "\n"),
        ("kinetics-sounds", make_kinetics_sounds, "train_list.txt", f"ks_train_0000 {SECRET}\n"),
        ("kinetics-sounds", make_kinetics_sounds, "spec/train/ks_train_0000.npy", SECRET),
        ("features", make_features, "train.npz", SECRET),
        ("features", make_features, "classes.txt", f"{SECRET}\n{SECRET}\n"),
        ("features", make_features, "classes.txt", b"\xff" + SECRET.encode()),
        ("cremad", make_cremad, "AudioWAV/1004_DFA_FEA_XX.wav", SECRET),
        ("cremad", make_cremad, "Image-01-FPS/1092_DFA_HAP_XX/frame_00001.jpg", SECRET),
        ("av-folder", make_av_folder_pkl, "audio/val-001.pkl", SECRET),
    ],
)
def test_a_damaged_file_is_named_without_quoting_what_it_holds(root, dataset, make, damaged, content):
    make(root / "set")
    path = root / "set" / damaged
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    error = loading_error(dataset, root / "set")
    assert str(error).startswith(f"set/{damaged}")
    assert_reveals_nothing(str(error), root.parent)


def test_damaged_encoder_weights_are_named_without_quoting_them(root):
    (root / "weights.pt").write_text(SECRET)
    with pytest.raises(ValueError, match=r"^encoder weights weights\.pt: cannot read as a state dict") as info:
        build_encoder({"name": "resnet18", "weights": "weights.pt"}, (3, 16, 16), 8)
    assert_reveals_nothing(str(info.value), root.parent)


# ---------------------------------------------------------------- config paths


def test_a_proc_path_is_refused_without_revealing_where_it_leads(root):
    with pytest.raises(ValidationError) as info:
        RunConfig.model_validate({"dataset": "features", "dataset_options": {"root": "/proc/self/environ"}})
    message = str(info.value)
    assert info.value.errors()[0]["loc"] == ("dataset_options", "root")
    assert "the path leads outside ARMSCOPE_DATA_ROOT" in message
    assert f"/proc/{os.getpid()}" not in message and str(root) not in message


def test_a_link_escaping_the_data_root_is_refused_without_naming_its_target(root):
    link(root / "escape", root.parent / "outside")
    with pytest.raises(ValidationError, match="outside ARMSCOPE_DATA_ROOT") as info:
        RunConfig.model_validate({"dataset": "uci-mfeat", "dataset_options": {"file": "escape/secret.txt"}})
    assert_reveals_nothing(str(info.value), root.parent)


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="resolve() stopped raising on link loops in 3.13")
def test_a_link_loop_is_a_validation_error_not_a_crash(root):
    link(root / "loop", root / "loop")
    with pytest.raises(ValidationError, match="cannot be resolved"):
        RunConfig.model_validate({"dataset": "features", "dataset_options": {"root": "loop"}})


@pytest.mark.service
def test_the_api_answers_422_without_revealing_where_a_proc_path_leads(root, store, tmp_path):
    app = create_app(Settings(home=tmp_path / "home"), store, RecordingQueue())
    with TestClient(app) as api:
        body = {"method": "arm", "dataset": "features", "dataset_options": {"root": "/proc/self/environ"}}
        response = api.post("/api/v1/runs", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "dataset_options", "root"]
    assert "outside ARMSCOPE_DATA_ROOT" in response.text
    assert f"/proc/{os.getpid()}" not in response.text and str(root) not in response.text
