"""The launch form's sweeps: several values typed into any number field, the run count and cap before launching,
the GPU-only options under "Advanced", and an encoder override for a modality the data set lacks."""

from __future__ import annotations

import json

from dash import html
from plotly.utils import PlotlyJSONEncoder

from dashboard import schema_form as sf
from dashboard.pages import launch
from service.sweeps import SweepSpec


def opt(section: str, field: str, value) -> tuple[dict, object]:
    return {"type": "opt", "section": section, "field": field}, value


def plan(*items, seeds: str = "0", method: str = "arm") -> launch.Plan:
    """The form with ``items`` typed in, as the browser sends them (text), on small synthetic data."""
    base = [opt("run", "epochs", "2"), opt("dataset", "n_samples", "300"), opt("run", "device", "cpu")]
    return launch.plan("synthetic-shift", method, "mlp", seeds, False, None, None, [*base, *items])


def fields(section: str, method: str = "arm") -> dict[str, sf.Field]:
    return {f.name: f for f in launch.section_fields(section, "synthetic-shift", method, "mlp")}


def test_a_number_input_reads_one_number_a_list_a_range_or_a_log_range():
    lr, epochs = fields("run")["lr"], fields("run")["epochs"]
    assert sf.parse(lr, "0.5") == (0.5, None) and sf.parse(epochs, "3") == (3, None)
    assert sf.parse(lr, "0.01, 0.1") == (sf.Swept({"values": [0.01, 0.1]}), None)
    assert sf.parse(lr, "0.01:0.1:5") == (sf.Swept({"range": [0.01, 0.1, 5]}), None)
    assert sf.parse(lr, "log 1e-4:1e-1:4") == (sf.Swept({"log_range": [0.0001, 0.1, 4]}), None)
    assert sf.parse(epochs, "2:8:4") == (sf.Swept({"range": [2, 8, 4]}), None)
    for text in ("fast", "1:2", "log 0.1", "2.5"):
        value, error = sf.parse(epochs, text)
        assert value is sf.OMIT and "a whole number" in error and "log 1e-4:1e-1:4" in error, text


def test_a_list_in_a_number_field_makes_a_sweep_searching_that_field():
    the_plan = plan(opt("run", "lr", "0.01, 0.1"), opt("method", "ema_decay", "log 0.9:0.99:2"), seeds="0, 1")
    assert the_plan.ok and isinstance(the_plan.request, SweepSpec)
    search = the_plan.request.search
    assert search["lr"].values == [0.01, 0.1] and search["method_options.ema_decay"].log_range == (0.9, 0.99, 2)
    assert the_plan.runs == 8
    assert launch.summary_text(the_plan, False) == "Launches a sweep of 8 runs over ema_decay × lr × 2 seeds (at most 200)."
    assert {c.method_options["ema_decay"] for c in the_plan.request.configs} == {0.9, 0.99}


def test_a_bad_swept_value_is_flagged_on_its_own_input():
    the_plan = plan(opt("run", "lr", "0.01, 20"))
    assert not the_plan.ok and "less than or equal to 10" in the_plan.field_errors[("run", "lr")]


def test_a_sweep_over_the_cap_is_refused_with_the_count_before_launching():
    the_plan = plan(opt("run", "lr", "log 1e-4:1e-1:150"), seeds="0, 1")
    assert not the_plan.ok and the_plan.request is None
    assert any("300 runs" in message and "max_runs (200)" in message for message in the_plan.general)
    assert launch.summary_text(the_plan, False).startswith("Fix")


def test_gpu_only_options_sit_under_a_collapsed_advanced_section():
    method = launch.sf.render("method", launch.section_fields("method", "", "arm", ""), advanced=launch.GPU_ONLY)
    basic, advanced = method
    text = json.dumps(advanced, cls=PlotlyJSONEncoder)
    assert isinstance(advanced, html.Details) and not getattr(advanced, "open", False)
    assert '"field": "compile"' in text and '"field": "cuda_graph"' in text and '"field": "estimator"' not in text
    assert '"field": "compile"' not in json.dumps(basic, cls=PlotlyJSONEncoder)
    run = json.dumps(launch.sf.render("run", launch.section_fields("run", "", "", ""), advanced=launch.GPU_ONLY)[1],
                     cls=PlotlyJSONEncoder)
    assert '"field": "channels_last"' in run and '"field": "precision"' in run and '"field": "epochs"' not in run


def test_an_advanced_option_is_read_like_any_other():
    the_plan = plan(opt("method", "compile", "off"))
    assert the_plan.ok and the_plan.request.method_options["compile"] == "off"


def test_an_encoder_override_for_a_modality_the_data_set_lacks_is_refused_naming_its_modalities():
    the_plan = plan(opt("model", "encoders", '{"vidual": {"name": "mlp"}}'))
    assert not the_plan.ok
    assert "'vidual'" in the_plan.field_errors[("model", "encoders")]
    assert "audio, visual" in the_plan.field_errors[("model", "encoders")]


def test_launching_a_search_lands_on_the_sweep_s_page(ctx):
    the_plan = plan(opt("run", "lr", "0.01, 0.1"))
    href = launch.launch(ctx, the_plan)
    sweep_id = int(href.removeprefix("/sweeps/"))
    runs, _ = ctx.store.list_runs(sweep=sweep_id)
    assert sorted(r["name"] for r in runs) == ["arm-lr0.01-s0", "arm-lr0.1-s0"] and len(ctx.queue.sent) == 2


def test_a_bad_swept_method_option_is_flagged_on_its_input_without_its_path():
    the_plan = plan(opt("method", "ema_decay", "0.5, 1.5"))
    assert the_plan.field_errors[("method", "ema_decay")].startswith("method 'arm', method_options.ema_decay=1.5:")
