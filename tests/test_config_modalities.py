"""A per-modality encoder override must name one of the data set's modalities (a typo was accepted and failed
on the worker), checked where the options alone name them, without torch."""

import pytest
from pydantic import ValidationError

from armscope.config import RunConfig


def error_of(**raw):
    with pytest.raises(ValidationError) as info:
        RunConfig.model_validate(raw)
    return info.value


def test_a_typo_d_modality_is_refused_naming_the_data_set_s_modalities():
    (detail,) = error_of(model_options={"encoders": {"vidual": {"name": "mlp"}}}).errors()
    assert detail["loc"] == ("model_options", "encoders")
    assert "'vidual'" in detail["msg"] and "did you mean 'visual'?" in detail["msg"]
    assert "synthetic-shift has: audio, visual" in detail["msg"]


def test_an_override_of_a_modality_the_data_set_has_is_kept():
    config = RunConfig.model_validate({"model_options": {"encoders": {"visual": {"name": "mlp", "hidden": [8]}}}})
    assert config.model_options["encoders"]["visual"]["hidden"] == [8]


def test_the_modalities_are_the_data_set_options_own():
    options = {"modalities": ["eeg", "ecg"]}
    RunConfig.model_validate({"dataset_options": options, "model_options": {"encoders": {"eeg": {"name": "mlp"}}}})
    (detail,) = error_of(dataset_options=options, model_options={"encoders": {"audio": {"name": "mlp"}}}).errors()
    assert "has: eeg, ecg" in detail["msg"]


def test_a_data_set_whose_files_name_the_modalities_is_checked_on_the_worker_instead():
    RunConfig.model_validate({"dataset": "features", "dataset_options": {"root": "/data/x"},
                              "model_options": {"encoders": {"anything": {"name": "mlp"}}}})
