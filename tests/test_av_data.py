"""Audio-visual data sets: cremad, kinetics-sounds, av-folder, their audio and frame pipelines."""

from __future__ import annotations

import math
import multiprocessing
import pickle

import numpy as np
import pytest
import torch
from av_fixtures import (
    CREMAD_CLASSES,
    corrupt,
    make_av_folder,
    make_cremad,
    make_kinetics_sounds,
    write_spectrogram,
    write_wav,
)
from PIL import Image
from pydantic import ValidationError
from scipy.io import wavfile

from armscope.builtin.datasets._av import AudioOptions
from armscope.config import RunConfig
from armscope.data import DATASETS, DataError, build_dataset
from armscope.data.audio import log_spectrogram, read_spectrogram, read_wav, tile
from armscope.data.frames import FrameTransform, pick_frames, random_crop_box
from armscope.data.loader_split import LoaderSplit
from armscope.rundir import RunDir
from armscope.train import train
from tests.support import without_timing

SMALL = {"image_size": 32, "frames": 2, "num_workers": 0}


def build(name: str, root, **options):
    return build_dataset(name, {"root": str(root), **SMALL, **options}, seed=0)


def all_batches(split, batch_size=4, shuffle=False, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return list(split.batches(batch_size, shuffle=shuffle, generator=generator))


def first_error(split, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        all_batches(split, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------- audio pipeline


def test_a_3s_clip_at_22050_hz_gives_a_257_by_188_spectrogram(tmp_path):
    write_wav(tmp_path / "a.wav", seconds=3.0, rate=22050)
    reader = AudioOptions().wav_spectrogram()
    spec = reader(tmp_path / "a.wav")
    assert reader.shape == (1, 257, 188)
    assert spec.shape == (1, 257, 188) and spec.dtype == torch.float32
    assert torch.isfinite(spec).all()


def test_other_rates_and_stereo_are_resampled_to_the_same_shape(tmp_path):
    write_wav(tmp_path / "a.wav", seconds=1.0, rate=44100, channels=2)
    samples, rate = read_wav(tmp_path / "a.wav")
    assert samples.ndim == 1 and rate == 44100 and samples.dtype == np.float32
    assert AudioOptions().wav_spectrogram()(tmp_path / "a.wav").shape == (1, 257, 188)
    shorter = AudioOptions(seconds=1.0, n_fft=256, hop_length=128).wav_spectrogram()
    assert shorter(tmp_path / "a.wav").shape == shorter.shape == (1, 129, 173)


def test_a_short_clip_is_tiled_then_cut_and_clipped_to_unit_range(tmp_path):
    assert tile(np.arange(3), 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert tile(np.arange(10), 4).tolist() == [0, 1, 2, 3]
    rng = np.random.default_rng(0)
    loud = (2.0 * rng.standard_normal(22050 * 7 // 10)).astype(np.float32)  # 0.7 s, peaks > 1
    wavfile.write(tmp_path / "loud.wav", 22050, loud)
    spec = AudioOptions().wav_spectrogram()(tmp_path / "loud.wav")
    expected = np.clip(np.concatenate([loud] * 5)[: 3 * 22050], -1, 1)
    assert torch.equal(spec, log_spectrogram(torch.from_numpy(expected), 512, 353))


def test_the_stft_matches_a_direct_computation_with_a_periodic_hann_window():
    x = np.random.default_rng(0).standard_normal(3 * 22050).astype(np.float32)
    padded = np.pad(x.astype(np.float64), 256, mode="reflect")  # center=True
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    frames = np.stack([padded[i * 353 : i * 353 + 512] * window for i in range(188)])
    expected = np.log(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-7)
    spec = log_spectrogram(torch.from_numpy(x), 512, 353)[0].numpy()
    assert np.allclose(spec, expected, rtol=1e-4, atol=1e-3)


def test_pcm_is_scaled_to_full_scale(tmp_path):
    wavfile.write(tmp_path / "a.wav", 8000, np.array([-32768, 0, 16384], dtype=np.int16))
    assert read_wav(tmp_path / "a.wav")[0].tolist() == [-1.0, 0.0, 0.5]


def test_audio_options_refuse_a_clip_shorter_than_half_a_window():
    with pytest.raises(ValidationError, match="too short for n_fft"):
        AudioOptions(seconds=0.01, sample_rate=8000, n_fft=512)


@pytest.mark.parametrize("suffix", [".npy", ".pkl"])
def test_stored_spectrograms_are_read_as_one_channel(tmp_path, suffix):
    write_spectrogram(tmp_path / f"s{suffix}", (20, 30))
    spec = read_spectrogram(tmp_path / f"s{suffix}")
    assert spec.shape == (1, 20, 30) and spec.dtype == torch.float32


def test_bad_spectrogram_files_are_named_in_the_error(tmp_path):
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(DataError, match=r"cube\.npy: spectrogram must be 2-D .*\(2, 3, 4\)"):
        read_spectrogram(tmp_path / "cube.npy")
    values = np.zeros((4, 5), dtype=np.float32)
    values[1, 2] = np.nan
    np.save(tmp_path / "nan.npy", values)
    with pytest.raises(DataError, match=r"nan\.npy: spectrogram holds 1 non-finite"):
        read_spectrogram(tmp_path / "nan.npy")
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"bad\.npy: cannot read as a \.npy array"):
        read_spectrogram(tmp_path / "bad.npy")
    with open(tmp_path / "code.pkl", "wb") as handle:
        pickle.dump(print, handle)
    with pytest.raises(DataError, match=r"code\.pkl: holds an object other than a numpy array \(refused"):
        read_spectrogram(tmp_path / "code.pkl")
    corrupt(tmp_path / "x.wav")
    with pytest.raises(DataError, match=r"x\.wav: cannot read as a WAV file"):
        read_wav(tmp_path / "x.wav")


# ---------------------------------------------------------------- frames


def test_frame_choice_is_fixed_in_evaluation_and_random_but_ordered_in_training():
    assert pick_frames(10, 1, None) == [5]
    assert pick_frames(10, 2, None) == [2, 7]
    assert pick_frames(3, 3, None) == [0, 1, 2]
    assert pick_frames(2, 4, None) == [0, 0, 1, 1]
    rng = np.random.default_rng(0)
    for _ in range(20):
        chosen = pick_frames(10, 3, rng)
        assert chosen == sorted(set(chosen)) and len(chosen) == 3
    assert len(pick_frames(2, 5, rng)) == 5


def test_random_crop_boxes_stay_inside_the_image():
    rng = np.random.default_rng(0)
    for width, height in [(40, 30), (30, 40), (224, 224), (200, 10), (3, 300)]:
        for _ in range(50):
            left, top, right, bottom = random_crop_box(width, height, rng)
            assert 0 <= left < right <= width and 0 <= top < bottom <= height


def test_frames_are_normalised_with_imagenet_statistics(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    Image.new("RGB", (40, 30), (255, 255, 255)).save(folder / "a.png")
    Image.new("RGB", (40, 30), (0, 0, 0)).save(folder / "b.jpg")
    out = FrameTransform(frames=1, size=16)((folder / "a.png",), None)
    assert out.shape == (1, 3, 16, 16) and out.dtype == torch.float32
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(out[0, :, 5, 5], expected, atol=1e-5)
    augmented = FrameTransform(frames=2, size=16)((folder / "b.jpg",), np.random.default_rng(1))
    assert augmented.shape == (2, 3, 16, 16)


# ---------------------------------------------------------------- cremad


def test_cremad_shapes_labels_and_classes(tmp_path):
    fixture = make_cremad(tmp_path / "cremad")
    bundle = build("cremad", fixture.root)
    assert bundle.modalities == ["audio", "visual"]
    assert bundle.class_names == ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]
    assert bundle.input_shapes == {"audio": (1, 257, 188), "visual": (2, 3, 32, 32)}
    assert (len(bundle.train), len(bundle.val), bundle.test) == (12, 6, None)
    assert bundle.info["val_split"] == "test.csv"
    assert bundle.info["pin_memory"] is torch.cuda.is_available()
    assert bundle.info["skipped"] == {"train": 0, "val": 0} and bundle.info["warnings"] == []
    batches = all_batches(bundle.val, batch_size=4)
    assert [len(y) for _, y in batches] == [4, 2]
    features, labels = batches[0]
    assert features["audio"].shape == (4, 1, 257, 188) and features["audio"].dtype == torch.float32
    assert features["visual"].shape == (4, 2, 3, 32, 32) and features["visual"].dtype == torch.float32
    assert labels.dtype == torch.int64
    wanted = [CREMAD_CLASSES.index(label) for label in fixture.labels["test"]]
    assert torch.cat([y for _, y in batches]).tolist() == wanted


def test_cremad_skips_and_reports_clips_without_audio_or_frames(tmp_path):
    fixture = make_cremad(
        tmp_path / "cremad",
        without_audio=("1001_DFA_NEU_XX", "1005_DFA_DIS_XX"),
        without_frames=("1003_DFA_SAD_XX", "1092_DFA_HAP_XX"),
    )
    (fixture.root / "Image-01-FPS" / "1004_DFA_FEA_XX" / "frame_00000.jpg").unlink()  # others stay
    for frame in (fixture.root / "Image-01-FPS" / "1002_DFA_HAP_XX").iterdir():
        frame.unlink()  # an empty folder counts as missing
    bundle = build("cremad", fixture.root)
    assert (len(bundle.train), len(bundle.val)) == (8, 5)
    assert bundle.info["skipped"] == {"train": 4, "val": 1}
    assert bundle.info["skipped_examples"] == [
        "1001_DFA_NEU_XX", "1002_DFA_HAP_XX", "1003_DFA_SAD_XX", "1005_DFA_DIS_XX", "1092_DFA_HAP_XX"
    ]
    assert bundle.info["warnings"] == [
        "cremad: skipped 4 of 12 training clips whose audio or frames are missing "
        "(e.g. 1001_DFA_NEU_XX, 1002_DFA_HAP_XX, 1003_DFA_SAD_XX)",
        "cremad: skipped 1 of 6 validation clips whose audio or frames are missing "
        "(e.g. 1092_DFA_HAP_XX)",
    ]


def test_cremad_errors_name_the_file_and_line(tmp_path):
    fixture = make_cremad(tmp_path / "cremad", n_train=3, n_test=2)
    root = fixture.root
    with open(root / "train.csv", "a") as handle:
        handle.write("1009_DFA_XXX_XX,CALM\n")
    with pytest.raises(DataError, match=r"train\.csv, line 4: the label is not a CREMA-D class \(NEU HAP"):
        build("cremad", root)
    (root / "train.csv").write_text("1001_DFA_NEU_XX\n")
    with pytest.raises(DataError, match=r"train\.csv, line 1: expected '<clip>,<LABEL>'"):
        build("cremad", root)
    (root / "train.csv").write_text("../../etc,NEU\n")
    with pytest.raises(DataError, match=r"train\.csv, line 1: the clip name is not usable"):
        build("cremad", root)
    (root / "train.csv").write_text("9999_DFA_NEU_XX,NEU\n")
    with pytest.raises(DataError, match=r"cremad: the training split under .*cremad is empty \(1 clips"):
        build("cremad", root)
    (root / "test.csv").unlink()
    with pytest.raises(DataError, match=r"test\.csv: file not found"):
        build("cremad", root)
    with pytest.raises(DataError, match=r"root: folder .*nowhere not found"):
        build("cremad", tmp_path / "nowhere")


@pytest.mark.parametrize("workers", [0, 2])
def test_an_unreadable_wav_or_jpg_is_named_even_from_a_worker(tmp_path, workers):
    fixture = make_cremad(tmp_path / "cremad", n_train=2, n_test=4)
    bad_wav = fixture.root / "AudioWAV" / f"{fixture.clips['test'][2]}.wav"
    corrupt(bad_wav)
    bundle = build("cremad", fixture.root, num_workers=workers)
    processes = len(multiprocessing.active_children())
    message = first_error(bundle.val, batch_size=2)
    assert message.startswith(f"{bad_wav}: cannot read as a WAV file")
    assert "Traceback" not in message
    assert len(multiprocessing.active_children()) == processes  # workers stopped, not left to the GC
    wavfile.write(bad_wav, 16000, np.zeros(8000, dtype=np.int16))
    bad_jpg = fixture.root / "Image-01-FPS" / fixture.clips["test"][1] / "frame_00000.jpg"
    bad_jpg.write_bytes(bad_jpg.read_bytes()[:200])  # truncated jpeg
    message = first_error(bundle.val, batch_size=2)
    assert message.startswith(f"{bad_jpg}: cannot read as an image")


@pytest.mark.parametrize("dataset", ["cremad", "kinetics-sounds", "av-folder"])
def test_roots_outside_the_data_root_are_rejected(tmp_path, monkeypatch, dataset):
    (tmp_path / "data" / "inside").mkdir(parents=True)
    monkeypatch.setenv("ARMSCOPE_DATA_ROOT", str(tmp_path / "data"))
    with pytest.raises(ValidationError, match="outside ARMSCOPE_DATA_ROOT") as info:
        RunConfig.model_validate({"dataset": dataset, "dataset_options": {"root": "../elsewhere"}})
    assert info.value.errors()[0]["loc"] == ("dataset_options", "root")
    assert RunConfig.model_validate({"dataset": dataset, "dataset_options": {"root": "inside"}})


def test_cremad_options_are_checked():
    with pytest.raises(ValidationError, match="unknown option 'fps'"):
        DATASETS.parse_options("cremad", {"root": "x", "fps": 2}, "dataset_options")
    with pytest.raises(ValidationError, match="root"):
        DATASETS.parse_options("cremad", {}, "dataset_options")
    options = DATASETS.parse_options("cremad", {"root": "x"}, "dataset_options")
    assert options.modality_names() == ["audio", "visual"]
    assert (options.frames, options.image_size, options.num_workers, options.pin_memory) == (1, 224, 2, None)
    assert (options.sample_rate, options.seconds, options.n_fft, options.hop_length) == (22050, 3.0, 512, 353)


# ---------------------------------------------------------------- kinetics-sounds


def test_kinetics_sounds_shapes_labels_and_classes(tmp_path):
    fixture = make_kinetics_sounds(
        tmp_path / "ks", without_audio=("ks_train_0001",), without_frames=("ks_val_0002",)
    )
    bundle = build("kinetics-sounds", fixture.root)
    assert len(bundle.class_names) == 31
    assert bundle.class_names[0] == "blowing_nose" and bundle.class_names[-1] == "tickling"
    assert bundle.input_shapes == {"audio": (1, 24, 30), "visual": (2, 3, 32, 32)}
    assert (len(bundle.train), len(bundle.val)) == (9, 4)
    assert bundle.info["skipped"] == {"train": 1, "val": 1}
    assert bundle.info["warnings"][0].startswith("kinetics-sounds: skipped 1 of 10 training clips")
    batches = all_batches(bundle.val, batch_size=3)
    assert batches[0][0]["audio"].shape == (3, 1, 24, 30)
    pairs = zip(fixture.clips["val"], fixture.labels["val"])
    kept = [label for clip, label in pairs if clip != "ks_val_0002"]
    assert torch.cat([y for _, y in batches]).tolist() == kept


def test_kinetics_sounds_errors_name_the_file(tmp_path):
    fixture = make_kinetics_sounds(tmp_path / "ks", n_train=3, n_val=3)
    root = fixture.root
    write_spectrogram(root / "spec" / "val" / "ks_val_0001.npy", (24, 31))
    message = first_error(build("kinetics-sounds", root).val)
    assert message.startswith(str(root / "spec" / "val" / "ks_val_0001.npy"))
    assert "has shape 24 x 31 but the first spectrogram" in message
    np.save(root / "spec" / "val" / "ks_val_0001.npy", np.zeros((24,), dtype=np.float32))
    assert "spectrogram must be 2-D" in first_error(build("kinetics-sounds", root).val)
    np.save(root / "spec" / "val" / "ks_val_0001.npy", np.full((24, 30), np.nan, dtype=np.float32))
    message = first_error(build("kinetics-sounds", root, num_workers=2).val)
    nan_file = root / "spec" / "val" / "ks_val_0001.npy"
    assert message == f"{nan_file}: spectrogram holds 720 non-finite values (NaN or inf)"
    with open(root / "val_list.txt", "a") as handle:
        handle.write("ks_val_0009 31\n")
    with pytest.raises(DataError, match=r"val_list\.txt, line 4: the label index is out of range \(0\.\.30"):
        build("kinetics-sounds", root)
    with pytest.raises(DataError, match=r"image/test: folder not found"):
        build("kinetics-sounds", root, val_split="test")
    with pytest.raises(ValidationError, match="must differ from 'train'"):
        DATASETS.parse_options("kinetics-sounds", {"root": "x", "val_split": "train"}, "o")


# ---------------------------------------------------------------- av-folder


@pytest.mark.parametrize("audio", ["wav", "npy", "pkl"])
def test_av_folder_reads_raw_audio_or_spectrograms(tmp_path, audio):
    fixture = make_av_folder(tmp_path / "av", audio=audio)
    bundle = build("av-folder", fixture.root)
    assert bundle.class_names == ["car", "cat", "dog"]
    expected = (1, 257, 188) if audio == "wav" else (1, 24, 30)
    assert bundle.input_shapes == {"audio": expected, "visual": (2, 3, 32, 32)}
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (9, 3, 3)
    assert bundle.info["val_split"] == "val (auto)"
    features, labels = all_batches(bundle.test, batch_size=8)[0]
    assert features["audio"].shape == (3, *expected)
    assert labels.tolist() == [bundle.class_names.index(n) for n in fixture.labels["test"]]


def test_av_folder_falls_back_to_test_for_validation(tmp_path):
    fixture = make_av_folder(
        tmp_path / "av", {"train": 6, "test": 3}, audio="npy", without_frames=("train-002",)
    )
    bundle = build("av-folder", fixture.root)
    assert (len(bundle.train), len(bundle.val), bundle.test) == (5, 3, None)
    assert bundle.info["val_split"] == "test (auto)"
    assert bundle.info["skipped"] == {"train": 1, "val": 0}
    with pytest.raises(DataError, match=r"manifest\.csv: no rows with split 'val'"):
        build("av-folder", fixture.root, val_split="val")


def test_av_folder_errors_name_the_file_and_line(tmp_path):
    fixture = make_av_folder(tmp_path / "av", {"train": 3, "val": 2}, audio="npy")
    root = fixture.root
    manifest = root / "manifest.csv"
    rows = manifest.read_text()
    manifest.write_text(rows + "extra-000,dog,holdout\n")
    with pytest.raises(DataError, match=r"manifest\.csv, line 7: the split is not one of train, val, test"):
        build("av-folder", root)
    manifest.write_text("name,label,split\n" + rows.split("\n", 1)[1])
    with pytest.raises(DataError, match=r"manifest\.csv, line 1: the header must name .* missing clip"):
        build("av-folder", root)
    manifest.write_text(rows)
    write_wav(root / "audio" / "val-001.wav")
    with pytest.raises(DataError, match=r"mixes raw audio and spectrograms"):
        build("av-folder", root)
    (root / "audio" / "val-001.wav").unlink()
    for path in (root / "audio").glob("val-*"):
        path.unlink()
    empty = r"av-folder: the validation split under .* is empty \(2 clips listed in .*manifest\.csv, all"
    with pytest.raises(DataError, match=empty):
        build("av-folder", root)


# ---------------------------------------------------------------- LoaderSplit


def test_augmentation_is_the_same_for_a_seed_with_0_or_2_workers(tmp_path):
    fixture = make_av_folder(tmp_path / "av", {"train": 10, "val": 2}, audio="npy", frames=4)
    runs = []
    for workers in (0, 2, 2):
        bundle = build("av-folder", fixture.root, num_workers=workers)
        generator = torch.Generator().manual_seed(7)
        epochs = [list(bundle.train.batches(3, shuffle=True, generator=generator)) for _ in range(2)]
        runs.append(epochs)
    for other in runs[1:]:
        for epoch, epoch_other in zip(runs[0], other):
            for (x, y), (x2, y2) in zip(epoch, epoch_other, strict=True):
                assert torch.equal(y, y2)
                assert all(torch.equal(x[m], x2[m]) for m in x)
    first, second = (torch.cat([x["visual"] for x, _ in epoch]) for epoch in runs[0])
    assert not torch.equal(first, second)  # a new epoch draws new crops
    evaluation = [all_batches(bundle.train, batch_size=4) for _ in range(2)]
    for (x, _), (x2, _) in zip(*evaluation):
        assert torch.equal(x["visual"], x2["visual"])  # in order: fixed transforms


def test_loader_split_with_two_workers_yields_every_sample_once(tmp_path):
    fixture = make_kinetics_sounds(tmp_path / "ks", n_train=7, n_val=2, frames=2)
    bundle = build("kinetics-sounds", fixture.root, num_workers=2, pin_memory=False)
    split = bundle.train
    assert isinstance(split, LoaderSplit) and len(split) == 7
    batches = all_batches(split, batch_size=3, shuffle=True, seed=3)
    assert [len(y) for _, y in batches] == [3, 3, 1]
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(fixture.labels["train"])
    # A second, differently sized pass reuses the persistent workers.
    assert [len(y) for _, y in all_batches(split, batch_size=5)] == [5, 2]


# ---------------------------------------------------------------- training


def tiny_run(dataset: str, root, **options) -> RunConfig:
    return RunConfig.model_validate(
        {
            "dataset": dataset,
            "dataset_options": {
                "root": str(root), "image_size": 16, "frames": 1, "num_workers": 0, **options
            },
            "method": "arm",
            "epochs": 1,
            "batch_size": 4,
            "model_options": {"feature_dim": 8, "encoder": {"name": "mlp", "hidden": [8]}},
            "device": "cpu",
        }
    )


@pytest.mark.parametrize(
    ("dataset", "make", "options"),
    [
        ("cremad", make_cremad, {"num_workers": 2}),
        ("kinetics-sounds", make_kinetics_sounds, {}),
        ("av-folder", make_av_folder, {"frames": 2}),
    ],
)
def test_one_epoch_of_training_on_every_audio_visual_set(tmp_path, dataset, make, options):
    fixture = make(tmp_path / "data")
    result = train(tiny_run(dataset, fixture.root, **options), tmp_path / "run")
    assert result.status == "succeeded"
    record = RunDir(tmp_path / "run").metrics()[0]
    assert math.isfinite(record["train_loss"]) and 0 <= record["val_acc"] <= 1
    assert record["dominant"] in ("audio", "visual")


def test_a_resumed_run_matches_an_uninterrupted_one(tmp_path):
    fixture = make_kinetics_sounds(tmp_path / "data", n_train=8, n_val=4)
    config = tiny_run("kinetics-sounds", fixture.root)
    two = config.model_copy(update={"epochs": 2})
    train(two, tmp_path / "straight")
    train(config, tmp_path / "resumed")
    train(two, tmp_path / "resumed", resume=True)

    assert without_timing(RunDir(tmp_path / "straight").metrics()) == without_timing(RunDir(tmp_path / "resumed").metrics())


def test_a_corrupt_file_fails_the_run_naming_the_file(tmp_path):
    fixture = make_cremad(tmp_path / "data", n_train=8, n_test=4)
    bad = fixture.root / "AudioWAV" / f"{fixture.clips['train'][3]}.wav"
    corrupt(bad)
    result = train(tiny_run("cremad", fixture.root), tmp_path / "run")
    assert result.status == "failed" and str(bad) in result.error
    assert any(e["kind"] == "failed" and str(bad) in e["message"] for e in RunDir(tmp_path / "run").events())


def test_with_skip_a_corrupt_file_is_dropped_and_counted(tmp_path):
    fixture = make_cremad(tmp_path / "data", n_train=8, n_test=4)
    bad = fixture.root / "AudioWAV" / f"{fixture.clips['train'][3]}.wav"
    corrupt(bad)
    config = tiny_run("cremad", fixture.root, on_bad_file="skip").model_copy(update={"epochs": 2})
    result = train(config, tmp_path / "run")
    assert result.status == "succeeded"
    skipped = [e for e in RunDir(tmp_path / "run").events() if e["kind"] == "skipped_files"]
    assert [e["epoch"] for e in skipped] == [1, 2]
    assert skipped[0]["data"]["count"] == 1 and str(bad) in skipped[0]["message"]


def test_clips_missing_on_disk_become_a_warning_event_at_the_start(tmp_path):
    fixture = make_cremad(tmp_path / "data", n_train=8, n_test=4, without_frames=("1002_DFA_HAP_XX",))
    train(tiny_run("cremad", fixture.root), tmp_path / "run")
    warnings = [e for e in RunDir(tmp_path / "run").events() if e["kind"] == "warning"]
    assert len(warnings) == 1 and "skipped 1 of 8 training clips" in warnings[0]["message"]
