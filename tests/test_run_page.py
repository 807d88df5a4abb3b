"""The run page `/runs/<id>`: a run's environment, its notes and tags edited in place, its project and sweep,
what a run without epochs shows, and its charts' defects fixed (negative Shapley values, colours, ticks, legend)."""

from __future__ import annotations

import flask
import pytest

from armscope.config import RunConfig
from armscope.metrics import CHARTS
from dashboard import actions
from dashboard import figures as fx
from dashboard import theme as th
from dashboard.pages import run_detail
from tests.layout_support import dump, find
from tests.support import FORM_RUN

GPU_RUN = {
    "device": "cuda:0", "device_requested": "auto", "peak_memory_mb": 12345.4,
    "gpu": {"name": "NVIDIA H200", "memory_mb": 143771, "capability": "9.0", "count": 1},
    "torch": "2.13.0", "cuda": "12.8", "cudnn": 91000, "armscope": "0.1.0", "python": "3.11.7",
    "platform": "Linux", "host": "gpu-7", "threads": 8, "dataloader_workers": 2,
    "code": {"repository": "/src/armscope", "commit": "abcdef1234567890", "dirty": True},
    "source": None,
}




def stored_run(ctx, status="queued", epochs=0, error=None, **config):
    run = ctx.store.create_run(RunConfig.model_validate({**FORM_RUN, **config}).model_dump(mode="json"), queue="cpu")
    if status != "queued":
        ctx.store.claim_run(run["id"], "w")
        for e in range(1, epochs + 1):
            ctx.store.add_epoch(run["id"], {"epoch": e, "val_acc": 0.5, "shapley.audio": 0.3, "shapley.visual": 0.1,
                                            "dominant": "audio", "imbalance": 0.5})
        if status != "running":
            ctx.store.finish_run(run["id"], "w", status, error)
    return ctx.store.get_run(run["id"])


class FakeAccess:
    """Token auth on: cookie ``w`` may write, ``r`` may only read."""

    def may_write(self, cookie):
        return cookie == "w"


# -- a run without epochs ---------------------------------------------------------------------------------


def test_a_run_that_failed_before_its_first_epoch_says_so_with_its_error_instead_of_empty_charts(ctx):
    error = "DataError: /data/train.npz: file not found (the train split is required)"
    run = stored_run(ctx, "failed", error=error)
    page = run_detail.layout(ctx, run["id"], "light")
    assert find(page, "run-charts").style == {"display": "none"}
    assert "failed before completing an epoch" in dump(find(page, "run-no-epochs"))
    banner = dump(find(page, "run-error"))
    assert "This run failed:" in banner and "file not found" in banner
    assert find(page, "run-stats").children == []
    assert "This run recorded no events" in dump(find(page, "run-events-box"))


def test_a_queued_run_says_its_charts_come_with_the_first_epoch_and_they_show_once_it_has_one(ctx):
    run = stored_run(ctx)
    assert "the charts appear after the first epoch" in dump(run_detail.no_epochs_note(run, has_records=False))
    assert run_detail.charts_style([]) == {"display": "none"}
    assert run_detail.no_epochs_note(run, has_records=True) == []
    assert run_detail.charts_style([{"epoch": 1}]) == {}


def test_a_run_with_epochs_shows_its_charts_and_no_note(ctx):
    run = stored_run(ctx, "succeeded", epochs=2)
    page = run_detail.layout(ctx, run["id"], "light")
    assert find(page, "run-charts").style == {} and find(page, "run-no-epochs").children == []


# -- project, sweep, notes and tags -------------------------------------------------------------------------


def test_the_run_names_its_project_and_links_its_sweep_s_page(ctx):
    config = RunConfig.model_validate({**FORM_RUN, "project": "ks study"}).model_dump(mode="json")
    sweep, (run,) = ctx.store.create_sweep({"config": config}, [(config, "cpu")])
    page = run_detail.layout(ctx, run["id"], "light")
    assert find(page, "run-sweep-link").href == f"/sweeps/{sweep['id']}"
    assert find(page, "run-project-link").href == "/?project=ks+study"


def test_notes_and_tags_saved_on_the_page_are_stored_shown_and_found_by_the_search(ctx):
    run = stored_run(ctx)
    color, message, saved = run_detail.save_notes(ctx, run["id"], "lr too high\nretry with 0.01", "ks,  lr ,ks,")
    assert (color, message) == ("success", "Saved.")
    assert (saved["notes"], saved["tags"]) == ("lr too high\nretry with 0.01", ["ks", "lr"])
    shown = dump(run_detail.status_block(saved))
    assert "retry with 0.01" in shown and '"lr"' in shown
    found, _ = ctx.store.list_runs(text="retry with")
    assert [r["id"] for r in found] == [run["id"]]


@pytest.mark.parametrize(
    ("notes", "tags", "refusal"),
    [
        ("x" * 10_001, "", "Notes hold at most 10,000 characters: 10,001 given."),
        ("", ",".join(f"t{i}" for i in range(51)), "At most 50 tags: 51 given."),
        ("", "ok, " + "y" * 101, "A tag holds at most 100 characters"),
    ],
)
def test_notes_or_tags_past_the_api_s_limits_are_refused_saying_why_and_nothing_is_stored(ctx, notes, tags, refusal):
    run = stored_run(ctx)
    color, message, saved = run_detail.save_notes(ctx, run["id"], notes, tags)
    assert color == "danger" and message.startswith(refusal) and saved is None
    assert (ctx.store.get_run(run["id"])["notes"], ctx.store.get_run(run["id"])["tags"]) == ("", [])


def test_a_read_only_session_cannot_edit_notes(ctx):
    run = stored_run(ctx)
    ctx.access = FakeAccess()
    with flask.Flask("t").test_request_context(headers={"Cookie": "armscope_session=r"}):
        assert run_detail.save_notes(ctx, run["id"], "mine", "") == ("danger", actions.READ_ONLY, None)
    assert ctx.store.get_run(run["id"])["notes"] == ""


def test_notes_changed_elsewhere_reach_an_open_page_at_its_next_poll(ctx):
    run = stored_run(ctx, "running", epochs=1)
    cursor = run_detail.initial_cursor(run, ctx.store.metrics(run["id"]), [])
    ctx.store.update_run(run["id"], notes="seen from the API")
    assert run_detail.poll(ctx, run["id"], cursor)["changed"]


# -- the environment ------------------------------------------------------------------------------------------


def test_the_environment_tab_reads_device_gpu_versions_and_commit(ctx):
    rows = dict(run_detail.environment_rows(GPU_RUN))
    assert rows["device"] == "cuda:0 (config: auto)"
    assert rows["GPU"] == "NVIDIA H200, 140 GiB, compute capability 9.0"
    assert rows["peak memory"] == "12,345 MiB"
    assert rows["torch"] == "torch 2.13.0, CUDA 12.8, cuDNN 91000"
    assert (rows["host"], rows["DataLoader workers"], rows["CPU threads"]) == ("gpu-7", "2", "8")
    assert rows["armscope's code"] == "commit abcdef123456, with uncommitted changes (/src/armscope)"


def test_a_run_page_shows_its_stored_environment_or_says_when_it_is_recorded(ctx):
    run = stored_run(ctx, "running")
    assert "Recorded when the run starts" in dump(find(run_detail.layout(ctx, run["id"]), "run-environment-box"))
    ctx.store.set_environment(run["id"], "w", GPU_RUN)
    table = dump(find(run_detail.layout(ctx, run["id"]), "run-environment-table"))
    assert "NVIDIA H200" in table and "gpu-7" in table


def test_the_imbalance_tile_says_what_its_scale_means(ctx):
    run = stored_run(ctx, "succeeded", epochs=1)
    tiles = dump(run_detail.stats(run, ctx.store.metrics(run["id"])))
    assert "0 = balanced" in tiles and "1 = one modality does it all" in tiles


# -- the charts' defects --------------------------------------------------------------------------------------


def draw(name, records, events=()):
    (chart,) = [c for c in CHARTS if c.name == name]
    return fx.chart_figure(chart, records, "light", (), events)


def epoch(e, audio, visual, acc, **extra):
    return {"epoch": e, "val_acc": acc, "shapley.audio": audio, "shapley.visual": visual,
            "dominant": "audio" if audio >= visual else "visual", **extra}


def test_negative_shapley_values_are_drawn_below_zero_not_stacked_over_the_positive_ones():
    records = [epoch(1, 0.5, -0.1, 0.45), epoch(2, 0.6, 0.05, 0.7)]
    fig = draw("contribution", records)
    above = {t.name: list(t.y) for t in fig.data if t.stackgroup == "shapley"}
    below = {t.name: list(t.y) for t in fig.data if t.stackgroup == "shapley-negative"}
    assert above["visual"] == pytest.approx([0.0, 0.05]) and below == {"visual (negative)": pytest.approx([-0.1, 0.0])}
    for i, record in enumerate(records):  # what is stacked above, less what is drawn below, is the fused accuracy
        assert sum(y[i] for y in above.values()) + sum(y[i] for y in below.values()) == pytest.approx(record["val_acc"])


def test_without_negative_values_the_stack_has_no_part_below_zero():
    fig = draw("contribution", [epoch(1, 0.3, 0.1, 0.5)])
    assert not [t for t in fig.data if t.stackgroup == "shapley-negative"]


def test_the_loss_chart_uses_no_modality_s_colour():
    fig = draw("loss", [{"epoch": 1, "train_loss": 2.0, "val_loss": 2.1}, {"epoch": 2, "train_loss": 1.5, "val_loss": 1.8}])
    colours = [t.line.color for t in fig.data]
    assert len(colours) == 2 and not set(colours) & set(th.MODALITY_COLORS)


def test_tiny_information_values_get_scientific_ticks_not_si_prefixes():
    records = [{"epoch": e, "nmi.audio": 0.05, "nmi.visual": 0.02, "ncmi.audio": 2e-4, "ncmi.visual": 1e-4}
               for e in (1, 2)]
    fig = draw("info", records)
    assert fig.layout.yaxis.tickformat == ""  # NMI's values read well as they are
    assert fig.layout.yaxis2.tickformat == ".2~e"  # NCMI's: 2e-4, not plotly's "200μ"


def test_the_dominance_strip_has_a_legend_when_one_modality_dominates_every_epoch():
    fig = draw("dominance", [epoch(1, 0.5, 0.1, 0.7), epoch(2, 0.5, 0.2, 0.8)])
    assert [t.name for t in fig.data] == ["audio"] and fig.layout.showlegend is True
