import json

import pytest
from pydantic import ValidationError

from armscope.config import ConfigError, RunConfig, load_config_file, run_config_schema, set_dotted


def error_of(**raw):
    with pytest.raises(ValidationError) as info:
        RunConfig.model_validate(raw)
    return info.value


def test_defaults_fill_every_option_dictionary():
    config = RunConfig()
    assert config.method == "arm" and config.dataset == "synthetic-shift"
    assert config.method_options["estimator"] == "debiased"
    assert config.model_options["encoder"]["name"] == "mlp"
    assert "n_samples" in config.dataset_options


def test_unknown_method_is_rejected_listing_the_choices():
    err = error_of(method="armm")
    text = str(err)
    assert "method" in text and "armm" in text
    for name in ("arm", "baseline", "ogm-ge", "unimodal"):
        assert name in text


def test_unknown_dataset_is_rejected_listing_the_choices():
    text = str(error_of(dataset="mnist"))
    assert "synthetic-shift" in text and "uci-mfeat" in text


def test_unknown_option_names_the_field_and_lists_valid_options():
    err = error_of(method="arm", method_options={"estimater": "plugin"})
    (detail,) = err.errors()
    assert detail["loc"] == ("method_options", "estimater")
    assert "estimator" in detail["msg"] and "nmi_bins" in detail["msg"]


def test_bad_option_value_names_the_dotted_field():
    err = error_of(dataset_options={"n_samples": -5})
    assert err.errors()[0]["loc"] == ("dataset_options", "n_samples")


def test_bad_choice_for_a_literal_field_lists_the_choices():
    err = error_of(optimizer="rmsprop")
    assert err.errors()[0]["loc"] == ("optimizer",)
    assert "sgd" in str(err) and "adamw" in str(err)


def test_unimodal_modality_must_belong_to_the_dataset():
    err = error_of(method="unimodal", method_options={"modality": "smell"})
    assert err.errors()[0]["loc"] == ("method_options", "modality")
    assert "audio" in str(err)


def test_encoder_options_are_validated_per_modality():
    err = error_of(model_options={"encoders": {"audio": {"name": "mlp", "hiden": [3]}}})
    assert err.errors()[0]["loc"] == ("model_options", "encoders.audio", "hiden")


@pytest.mark.parametrize(
    ("hidden", "limit"),
    [([10**12], "less than or equal to 65536"), ([-5], "greater than or equal to 1"), ([0], "greater than or equal to 1")],
)
def test_every_hidden_size_is_positive_and_capped(hidden, limit):
    (detail,) = error_of(model_options={"encoder": {"name": "mlp", "hidden": hidden}}).errors()
    assert detail["loc"] == ("model_options", "encoder", "hidden", 0) and limit in detail["msg"]


def test_the_number_of_hidden_layers_is_capped():
    (detail,) = error_of(model_options={"encoder": {"name": "mlp", "hidden": [1] * 100_000}}).errors()
    assert detail["loc"] == ("model_options", "encoder", "hidden") and "at most 64 items" in detail["msg"]


def test_unknown_encoder_lists_the_choices():
    with pytest.raises(ValidationError) as info:
        RunConfig.model_validate({"model_options": {"encoder": {"name": "transformer"}}})
    assert "mlp" in str(info.value)


def test_epochs_are_bounded():
    assert error_of(epochs=0).errors()[0]["loc"] == ("epochs",)


def test_json_schema_is_exported_with_every_field():
    schema = run_config_schema()
    for field in ("dataset", "method", "epochs", "optimizer", "device", "seed", "tags"):
        assert field in schema["properties"]


def test_dotted_assignment_parses_json_values_and_keeps_strings():
    raw: dict = {}
    set_dotted(raw, "dataset_options.n_samples=12000")
    set_dotted(raw, "method_options.estimator=reference")
    set_dotted(raw, "tags=[\"a\", \"b\"]")
    assert raw == {
        "dataset_options": {"n_samples": 12000},
        "method_options": {"estimator": "reference"},
        "tags": ["a", "b"],
    }


def test_dotted_assignment_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="dotted.key=value"):
        set_dotted({}, "epochs")


def test_config_files_may_be_yaml_or_json(tmp_path):
    (tmp_path / "a.yaml").write_text("method: baseline\nepochs: 2\n")
    (tmp_path / "b.json").write_text(json.dumps({"method": "ogm-ge"}))
    assert load_config_file(tmp_path / "a.yaml") == {"method": "baseline", "epochs": 2}
    assert load_config_file(tmp_path / "b.json") == {"method": "ogm-ge"}


def test_unreadable_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config_file(tmp_path / "missing.yaml")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ConfigError, match="bad.json"):
        load_config_file(tmp_path / "bad.json")


def test_tags_are_bounded_in_number_and_length():
    assert error_of(tags=["t"] * 51).errors()[0]["loc"] == ("tags",)
    assert error_of(tags=["x" * 101]).errors()[0]["loc"] == ("tags", 0)


def test_validated_options_stay_typed_beside_the_stored_json():
    config = RunConfig.model_validate(
        {"method": "ogm-ge", "method_options": {"alpha": 0.3}, "model_options": {"encoders": {"audio": {"name": "mlp"}}}}
    )
    assert config.parsed_method_options.alpha == 0.3
    assert config.parsed_method_options.model_dump(mode="json") == config.method_options
    assert config.parsed_dataset_options.model_dump(mode="json") == config.dataset_options
    audio = config.parsed_model_options.choice_for("audio")
    assert audio.name == "mlp" and audio.as_json() == config.model_options["encoders"]["audio"]
    assert "parsed_method_options" not in config.model_dump()
