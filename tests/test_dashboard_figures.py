"""The dashboard's figure builders: pure functions of epoch records, checked without a browser."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from armscope.metrics import CHARTS, Chart, Metric
from dashboard import figures as fx
from dashboard import theme as th
from service import seed_sets as ss
from service.catalog import metrics_of


def draw(name: str, records, declarations=(), events=(), mode="light"):
    """The engine's run-detail chart ``name``, as the run page draws it."""
    (chart,) = [c for c in CHARTS if c.name == name]
    return fx.chart_figure(chart, records, mode, declarations, events)


def record(epoch: int, audio: float, visual: float, acc: float, **extra) -> dict:
    return {
        "epoch": epoch,
        "val_acc": acc,
        "shapley.audio": audio,
        "shapley.visual": visual,
        "val_acc.audio": acc - 0.1,
        "val_acc.visual": acc - 0.3,
        "nmi.audio": 0.01,
        "nmi.visual": 0.02,
        "ncmi.audio": 0.001,
        "ncmi.visual": 0.002,
        "arm_score.audio": 0.1,
        "arm_score.visual": 0.2,
        "arm_weight.audio": 1.1,
        "arm_weight.visual": 0.9,
        "grad_norm.audio": 0.3,
        "grad_norm.visual": 0.2,
        "train_loss": 2.0 / epoch,
        "val_loss": 2.1 / epoch,
        "samples_seen": 100 * epoch,
        "elapsed_seconds": 1.5 * epoch,
        "dominant": "audio" if audio >= visual else "visual",
        **extra,
    }


RECORDS = [record(1, 0.3, 0.1, 0.5), record(2, 0.35, 0.2, 0.65), record(3, 0.2, 0.4, 0.7), record(4, 0.2, 0.45, 0.75)]


def names(fig) -> list[str]:
    return [t.name for t in fig.data]


def test_modalities_come_in_first_mention_order_from_any_per_modality_key():
    assert fx.modalities(RECORDS) == ["audio", "visual"]
    assert fx.modalities([{"epoch": 1, "grad_norm.mor": 1.0, "val_acc": 0.5, "shapley.fou": 0.1}]) == ["mor", "fou"]
    assert fx.modalities([{"epoch": 1, "val_acc": 0.5, "epoch_seconds": 2.0}]) == []


def test_ema_is_identity_at_zero_debiased_otherwise_and_keeps_gaps():
    values = [1.0, None, 3.0, 5.0]
    assert fx.ema(values, 0) == values
    assert fx.ema([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # debiased: no ramp from 0
    smoothed = fx.ema(values, 0.5)
    assert smoothed[1] is None and smoothed[0] == pytest.approx(1.0)
    assert 1.0 < smoothed[2] < 3.0 and smoothed[2] < smoothed[3] < 5.0


def test_switches_are_found_between_consecutive_dominant_modalities():
    assert fx.switches(RECORDS) == [(3, "audio", "visual")]
    assert fx.switches([{"epoch": 1, "dominant": None}, {"epoch": 2, "dominant": "a"}]) == []


def test_accuracy_figure_draws_fused_and_each_masked_modality():
    fig = draw("accuracy", RECORDS)
    assert names(fig) == ["Fused accuracy (val)", "audio", "visual"]
    assert fig.data[0].line.width == 3
    assert list(fig.data[1].y) == pytest.approx([r["val_acc.audio"] for r in RECORDS])
    assert fig.layout.yaxis.tickformat.endswith("%")


def test_contribution_stack_adds_up_to_the_fused_accuracy():
    fig = draw("contribution", RECORDS)
    stacked = [t for t in fig.data if t.stackgroup == "shapley"]
    assert [t.name for t in stacked] == ["no modality (chance)", "audio", "visual"]
    for i, r in enumerate(RECORDS):
        assert sum(t.y[i] for t in stacked) == pytest.approx(r["val_acc"])
    audio = stacked[1]
    assert list(audio.customdata) == pytest.approx([r["shapley.audio"] / r["val_acc"] for r in RECORDS])
    assert fig.data[-1].name == "Fused accuracy (val)"


def test_every_run_chart_says_when_there_are_no_epochs_yet():
    for chart in CHARTS:
        fig = fx.chart_figure(chart, [], "dark")
        assert not fig.data and "No epochs yet" in fig.layout.annotations[0].text


def test_arm_panels_lead_with_what_training_applied_solid_and_dot_the_validation_estimates():
    records = [dict(r, **{"arm_train_weight.audio": 1.2, "arm_train_weight.visual": 0.8}) for r in RECORDS]
    assert len(draw("arm", records).data) == 4  # the training weights are ARM's, declared by ARM
    fig = draw("arm", records, metrics_of("arm"))
    assert [a.text for a in fig.layout.annotations] == ["ARM score Φ per modality", "ARM weight w per modality"]
    weight_panel = [(t.name, t.line.dash) for t in fig.data if t.xaxis == "x2"]
    assert weight_panel == [("audio w (training)", "solid"), ("visual w (training)", "solid"),
                            ("audio (validation)", "dot"), ("visual (validation)", "dot")]
    score_panel = [(t.name, t.line.dash) for t in fig.data if t.xaxis == "x"]
    assert score_panel == [("audio", "solid"), ("visual", "solid")]  # nothing applied to lead with


def test_panel_titles_give_the_element_count_of_each_estimate():
    extra = {"arm_train_score.audio": 0.1, "arm_train_score.visual": 0.2, "arm_step_elements": 4096.0,
             "lens_elements": 51200}
    fig = draw("arm", [dict(r, **extra) for r in RECORDS], metrics_of("arm"))
    score_title = fig.layout.annotations[0].text
    assert score_title.startswith("ARM score Φ per modality<br>")
    assert "training: 4,096 elements per step" in score_title and "validation: 51,200 elements" in score_title
    assert "51,200" in draw("info", [dict(r, lens_elements=51200) for r in RECORDS]).layout.annotations[0].text


def test_information_and_grad_norm_figures_have_one_trace_per_modality_and_panel():
    assert len(draw("info", RECORDS).data) == 4
    assert names(draw("grad", RECORDS)) == ["audio", "visual"]


def test_the_loss_chart_draws_training_and_validation_loss_as_declared():
    records = [dict(r, train_loss=1.0 / r["epoch"], val_loss=1.2 / r["epoch"]) for r in RECORDS]
    fig = draw("loss", records)
    assert names(fig) == ["Training loss", "Validation loss"] and fig.data[1].line.dash == "dash"


def test_a_chart_whose_measures_were_not_logged_says_so():
    assert "Not recorded" in draw("grad", [{"epoch": 1, "val_acc": 0.5}]).layout.annotations[0].text


def test_a_method_metric_declared_on_an_engine_line_chart_is_drawn_there_dotted():
    extra = Metric("toy_acc.{m}", "Toy accuracy", "Accuracy: fused and each modality alone", basis="estimate",
                   sample="validation", unit="fraction", short="toy")
    records = [dict(r, **{"toy_acc.audio": 0.4, "toy_acc.visual": 0.3}) for r in RECORDS]
    fig = draw("accuracy", records, [extra])
    dotted = [t.name for t in fig.data if t.line.dash == "dot"]
    assert dotted == ["audio toy", "visual toy"]


def test_a_method_may_not_declare_a_metric_on_the_contribution_stack_or_the_dominance_strip():
    from armscope.metrics import CONTRIBUTION, check_declarations

    metric = Metric("toy_share.{m}", "Toy share", CONTRIBUTION, basis="applied", sample="training")
    with pytest.raises(ValueError, match="draws only the engine's measures"):
        check_declarations([metric], "method 'toy'")


def test_a_method_gets_the_charts_its_declarations_name_and_no_others():
    assert fx.method_charts(metrics_of("baseline")) == []
    assert [c.title for c in fx.method_charts(metrics_of("arm"))] == ["ARM guards"]
    (chart,) = fx.method_charts(metrics_of("ogm"))
    ogm = [
        dict(r, **{"ogm_coeff.audio": 0.5, "ogm_coeff.visual": 1.0, "ogm_ratio.audio": 1.3, "ogm_ratio.visual": 0.7})
        for r in RECORDS
    ]
    fig = fx.chart_figure(chart, ogm, "light", metrics_of("ogm"))
    assert fig.layout.title.text == "OGM-GE modulation" and len(fig.data) == 4
    assert [a.text for a in fig.layout.annotations] == ["OGM coefficient per modality", "OGM ratio per modality"]
    assert "Not recorded" in fx.chart_figure(chart, RECORDS, "light", metrics_of("ogm")).layout.annotations[0].text


def test_a_declared_chart_draws_a_panel_per_family_and_one_for_its_scalars():
    scale = Metric("toy_scale.{m}", "Toy scale", "Toy", basis="applied", sample="training")
    steps = Metric("toy_steps", "Toy steps", "Toy", basis="applied", sample="training")
    records = [dict(r, **{"toy_scale.audio": 0.5, "toy_scale.visual": 0.25, "toy_steps": 3.0}) for r in RECORDS]
    fig = fx.chart_figure(Chart("method-0", "Toy", "panels"), records, "light", [scale, steps])
    assert [a.text for a in fig.layout.annotations] == ["Toy scale"]  # the scalars panel has no title
    assert names(fig) == ["audio", "visual", "Toy steps"]


def test_dominance_strip_colours_epochs_and_marks_switches_with_the_event_message():
    events = [{"epoch": 3, "kind": "dominance_switch", "message": "dominance switched from audio to visual at epoch 3"}]
    fig = draw("dominance", RECORDS, events=events)
    bars = {t.name: list(t.x) for t in fig.data if t.type == "bar"}
    assert bars == {"audio": [1, 2], "visual": [3, 4]}
    assert fig.data[0].marker.color == th.modality_color(0)
    marks = [t for t in fig.data if t.name == "switch"][0]
    assert list(marks.x) == [2.5] and "from audio to visual" in marks.hovertext[0]
    assert len(fig.layout.shapes) == 1


def runs(n: int = 3) -> list[dict]:
    methods = ["arm", "baseline", "arm"]
    return [
        {
            "id": i + 1,
            "name": f"run-{i + 1}",
            "method": methods[i % 3],
            "seed": i,
            "status": "succeeded",
            "config": {"method": methods[i % 3], "seed": i},
            "records": RECORDS,
        }
        for i in range(n)
    ]


def test_compare_contribution_view_has_a_colour_per_run_and_a_dash_per_modality():
    fig = fx.compare_figure(runs(3), fx.DEFAULT_METRIC, 0.0, "epoch", "run", "light")
    data = fig["data"]
    assert len(data) == 6
    assert [tuple(t["meta"]) for t in data][:2] == [(1, "audio"), (1, "visual")]
    colours = {t["meta"][0]: t["line"]["color"] for t in data}
    assert len(set(colours.values())) == 3
    assert {t["line"]["dash"] for t in data if t["meta"][1] == "audio"} == {"solid"}
    assert {t["line"]["dash"] for t in data if t["meta"][1] == "visual"} == {"dash"}
    assert "#1 run-1 · audio" in [t["name"] for t in data]
    assert list(data[0]["y"]) == [r["shapley.audio"] for r in RECORDS]
    assert fig["layout"]["template"] == pio.templates["armscope-light"].to_plotly_json()


def test_compare_colours_by_method_and_uses_the_chosen_x_axis_and_smoothing():
    fig = fx.compare_figure(runs(3), "val_acc", 0.6, "wall", "method", "dark")
    data = fig["data"]
    assert len(data) == 3
    assert data[0]["line"]["color"] == data[2]["line"]["color"] != data[1]["line"]["color"]  # arm, baseline, arm
    assert data[0]["x"] == [r["elapsed_seconds"] for r in RECORDS]
    assert data[0]["y"] == pytest.approx(fx.ema([r["val_acc"] for r in RECORDS], 0.6))
    assert fig["layout"]["xaxis"]["title"]["text"] == "wall time (s)"
    assert fig["layout"]["template"]["layout"]["font"]["color"] == pio.templates["armscope-dark"].layout.font.color
    samples = fx.compare_figure(runs(1), "val_acc", 0, "samples")
    assert samples["data"][0]["x"] == [100, 200, 300, 400]
    go.Figure(fig)  # what the browser gets is a valid plotly figure


def seeded(run_id: int, method: str, seed: int, accuracies: list[float], lr: float = 0.01) -> dict:
    return {
        "id": run_id,
        "name": f"{method}-s{seed}",
        "method": method,
        "seed": seed,
        "status": "succeeded",
        "config": {"method": method, "seed": seed, "lr": lr, "name": f"{method}-s{seed}", "tags": [str(seed)]},
        "records": [record(e + 1, 0.2, 0.1, a) for e, a in enumerate(accuracies)],
    }


def test_runs_that_differ_only_in_seed_form_one_set_labelled_by_what_tells_the_sets_apart():
    sets = ss.seed_sets([seeded(1, "arm", 0, [0.5]), seeded(2, "baseline", 0, [0.4]), seeded(3, "arm", 1, [0.6]),
                           seeded(4, "arm", 0, [0.7], lr=0.1)])
    assert [(label, [r["id"] for r in members]) for label, members in sets] == [
        ("arm · lr=0.01 (n=2)", [1, 3]),
        ("baseline (n=1)", [2]),  # the only baseline set: nothing to tell apart
        ("arm · lr=0.1 (n=1)", [4]),
    ]


def test_mean_over_seeds_is_drawn_with_a_band_of_one_standard_deviation():
    fig = fx.compare_figure(
        [seeded(1, "arm", 0, [0.5, 0.6, 0.9]), seeded(2, "arm", 1, [0.7, 0.8]), seeded(3, "baseline", 0, [0.4, 0.4])],
        "val_acc", 0.0, "epoch", "method", "light", group="seeds",
    )
    upper, lower, mean = fig["data"][:3]
    assert mean["name"] == "arm (n=2)" and mean["meta"] == ["seeds", "arm (n=2)", ""]
    assert mean["x"] == [1, 2, 3] and mean["y"] == pytest.approx([0.6, 0.7, 0.9])
    assert [c[1] for c in mean["customdata"]] == [2, 2, 1]  # epoch 3: one run only, no spread
    assert upper["y"] == pytest.approx([0.6 + 0.1414214, 0.7 + 0.1414214, 0.9])
    assert lower["y"] == pytest.approx([0.6 - 0.1414214, 0.7 - 0.1414214, 0.9])
    assert lower["fill"] == "tonexty" and lower["fillcolor"].startswith("rgba(") and not upper["showlegend"]
    assert mean["line"]["color"] == th.method_color("arm") != fig["data"][5]["line"]["color"]
    assert len(fig["data"]) == 6 and "mean ± std over seeds" in fig["layout"]["title"]["text"]
    go.Figure(fig)


def test_mean_over_seeds_keeps_a_dash_per_modality():
    fig = fx.compare_figure([seeded(1, "arm", 0, [0.5]), seeded(2, "arm", 1, [0.7])], fx.DEFAULT_METRIC, group="seeds")
    means = [t for t in fig["data"] if "name" in t]
    assert [(t["meta"][2], t["line"]["dash"]) for t in means] == [("audio", "solid"), ("visual", "dash")]


def test_summary_gives_each_runs_last_and_best_value_unsmoothed():
    rows = fx.compare_summary([seeded(1, "arm", 0, [0.5, 0.9, 0.7])], "val_acc")
    assert rows == [{"label": "#1 arm-s0", "modality": "", "n": 1, "epoch": 3, "final": (0.7, None),
                     "best": (0.9, None), "best_epoch": 2}]


def test_summary_of_a_loss_takes_the_lowest_value_as_best():
    run = seeded(1, "arm", 0, [0.5, 0.6])  # train_loss is 2 / epoch: lowest at the last epoch
    assert fx.compare_summary([run], "train_loss")[0]["best"] == (1.0, None)


def test_summary_over_seeds_is_the_mean_and_std_of_the_runs_last_and_best_values():
    rows = fx.compare_summary([seeded(1, "arm", 0, [0.5, 0.9]), seeded(2, "arm", 1, [0.7, 0.6, 0.5])],
                              "val_acc", group="seeds")
    (row,) = rows
    assert row["label"] == "arm (n=2)" and row["n"] == 2
    assert row["final"] == pytest.approx((0.7, 0.2828427))  # 0.9 and 0.5
    assert row["best"] == pytest.approx((0.8, 0.1414214))  # 0.9 and 0.7


def test_summary_of_a_lens_estimate_says_how_many_elements_it_was_estimated_on():
    runs = [{"id": 1, "name": "a", "method": "arm", "config": {}, "records": [dict(r, lens_elements=51200) for r in RECORDS]}]
    rows = fx.compare_summary(runs, "nmi.*")
    assert [row["elements"] for row in rows] == [[51200], [51200]]
    assert "elements" not in fx.compare_summary(runs, "val_acc")[0]


def test_summary_has_a_row_per_modality_of_a_family():
    rows = fx.compare_summary([seeded(1, "arm", 0, [0.5])], fx.DEFAULT_METRIC)
    assert [(r["modality"], r["final"][0]) for r in rows] == [("audio", 0.2), ("visual", 0.1)]


def test_compare_explains_what_is_missing():
    assert "Pick runs" in fx.compare_figure([], "val_acc")["layout"]["annotations"][0]["text"]
    empty = [{"id": 1, "name": "a", "method": "arm", "records": []}]
    assert "no epochs yet" in fx.compare_figure(empty, "val_acc")["layout"]["annotations"][0]["text"]


def test_metric_options_put_the_contribution_view_first_and_list_what_records_hold():
    options = fx.metric_options(RECORDS)
    values = [o["value"] for o in options]
    assert values[0] == "shapley.*"
    assert {"val_acc", "train_loss", "val_loss", "nmi.*", "grad_norm.*", "val_acc.*"} <= set(values)
    assert "ogm_coeff.*" not in values


def test_compare_keys_are_the_metric_and_the_x_axis():
    keys = ["val_acc", "shapley.audio", "shapley.visual", "nmi.audio"]
    assert fx.compare_keys("shapley.*", "wall", keys) == ["elapsed_seconds", "shapley.audio", "shapley.visual"]
    assert fx.compare_keys("val_loss", "epoch", keys) == ["val_loss"]


def test_config_diff_lists_only_fields_that_differ():
    a = {"name": "x", "method": "arm", "epochs": 10, "method_options": {"w_min": 0.1}, "dataset_options": {"n": 5}}
    b = {"name": "y", "method": "baseline", "epochs": 10, "method_options": {}, "dataset_options": {"n": 5}}
    keys, rows = ss.config_diff([a, b])
    assert keys == ["method", "method_options.w_min"]
    assert rows == [
        {"method": "arm", "method_options.w_min": "0.1"},
        {"method": "baseline", "method_options.w_min": "—"},
    ]
    assert ss.config_diff([a, dict(a)]) == ([], [{}, {}])


def test_one_template_per_colour_mode_is_registered_and_used():
    assert {"armscope-light", "armscope-dark"} <= set(pio.templates)
    assert th.template("dark") == "armscope-dark" and th.template("nonsense") == "armscope-light"
    light = pio.templates["armscope-light"].layout.font.color
    dark = pio.templates["armscope-dark"].layout.font.color
    assert light != dark


def test_integer_ticks_for_short_runs_only():
    assert fx.integer_ticks(draw("accuracy", RECORDS), RECORDS).layout.xaxis.dtick == 1
    long = [record(e, 0.3, 0.1, 0.5) for e in range(1, 40)]
    assert fx.integer_ticks(draw("accuracy", long), long).layout.xaxis.dtick is None


def test_arm_s_training_scores_are_drawn_over_the_score_panel_and_its_weights_over_the_weight_panel():
    extra = {"arm_train_weight.audio": 1.2, "arm_train_weight.visual": 0.8,
             "arm_train_score.audio": 0.1, "arm_train_score.visual": 0.2}
    fig = draw("arm", [dict(r, **extra) for r in RECORDS], metrics_of("arm"))
    panel = {t.name: t.xaxis for t in fig.data}
    assert panel["audio Φ (training)"] == "x"
    assert panel["audio w (training)"] == "x2"
