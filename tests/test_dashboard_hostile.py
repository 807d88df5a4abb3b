"""The dashboard against a hostile colleague: HTML in names, crafted callback requests, huge id lists, stray files.

HTTP tests go through the whole app (FastAPI with the Dash server mounted, real SQLite store) the way
a browser or a script would; they send a same-origin Origin header, as the dashboard's pages do.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from armscope.config import RunConfig
from dashboard import actions
from dashboard import figures as fx
from dashboard import schema_form as sf
from dashboard.context import Context
from dashboard.inputs import MAX_IDS, BadInput, TooManyRuns, ids_from_csv, strict_loads
from dashboard.pages import compare, launch, run_detail
from server.app import create_app
from service.compare import MAX_COMPARED
from service.db.store import Store
from service.settings import Settings
from tests.fakes import RecordingQueue
from tests.support import FORM_RUN as TINY

EVIL = '<a href="http://evil">x</a>'
ESCAPED = '&lt;a href="http://evil"&gt;x&lt;/a&gt;'
ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture
def store(tmp_path):
    settings = Settings(home=tmp_path / "home")
    settings.ensure_home()
    store = Store(settings.resolved_database_url)
    store.upgrade()
    yield store
    store.dispose()


@pytest.fixture
def app(store, tmp_path):
    return create_app(Settings(home=tmp_path / "home"), store, RecordingQueue())


@pytest.fixture
def client(app):
    with TestClient(app) as client:
        yield client


def make_run(store: Store, name: str | None = None, epochs: int = 0, modality: str = "a") -> dict:
    config = RunConfig.model_validate({**TINY, "name": name}).model_dump(mode="json")
    run = store.create_run(config, queue="cpu")
    if epochs:
        store.claim_run(run["id"], "w")
        for e in range(1, epochs + 1):
            store.add_epoch(run["id"], {"epoch": e, "val_acc": 0.1 * e, f"shapley.{modality}": 0.05 * e,
                                        "dominant": modality})
        store.finish_run(run["id"], "w", "succeeded")
    return store.get_run(run["id"])


def callback_request(app, first_output: str, values: dict[str, object], trigger: str | None = None) -> dict:
    """The body Dash's renderer posts for the callback whose first output is ``first_output`` (and whose first
    input is the component ``trigger``, where several write that output); ``values`` by ``"<id>.<property>"``,
    the first input marked as the one that changed."""
    callbacks = app.state.dashboard.callback_map
    output, spec = next((key, spec) for key, spec in callbacks.items() if key.lstrip(".").startswith(first_output)
                        and (trigger is None or spec["inputs"][0]["id"] == trigger))
    outputs = [o.to_dict() for o in (spec["output"] if isinstance(spec["output"], list) else [spec["output"]])]
    # A wildcard output (the run page's declared charts) is sent as the list of components it matched: none here.
    outputs = [[] if o["id"].startswith("{") else o for o in outputs]

    def entries(declared: list[dict]) -> list[dict]:
        return [{**d, "value": values.get(f"{d['id']}.{d['property']}")} for d in declared]

    inputs = entries(spec["inputs"])
    return {
        "output": output,
        "outputs": outputs if isinstance(spec["output"], list) else outputs[0],
        "inputs": inputs,
        "state": entries(spec["state"]),
        "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"],
    }


def post(client, body: object) -> object:
    return client.post("/_dash-update-component", json=body, headers=ORIGIN)


def post_raw(client, text: str) -> object:
    return client.post(
        "/_dash-update-component", content=text, headers={**ORIGIN, "Content-Type": "application/json"}
    )


def router_request(app, pathname: str, search: str = "") -> dict:
    return callback_request(app, "page.children", {"url.pathname": pathname, "url.search": search,
                                                   "theme.data": "light"})


# -- user text in charts ----------------------------------------------------------------------------


def test_a_run_named_with_html_is_plain_text_in_the_compare_chart():
    run = {"id": 1, "name": EVIL, "method": "arm", "config": {}, "records": [{"epoch": 1, "val_acc": 0.5}]}
    figure = fx.compare_figure([run], "val_acc")
    trace = figure["data"][0]
    assert trace["name"] == f"#1 {ESCAPED}"
    assert "fullData.name" in trace["hovertemplate"] and "evil" not in trace["hovertemplate"]
    assert EVIL not in json.dumps(figure)


def test_a_set_of_seeds_labelled_with_html_is_plain_text_in_its_band():
    runs = [{"id": i, "name": EVIL, "method": "arm", "seed": i, "config": {"dataset_options": {"tag": EVIL}, "seed": i},
             "records": [{"epoch": 1, "val_acc": 0.5}]} for i in (1, 2)]
    figure = fx.compare_figure(runs, "val_acc", group="seeds")
    assert "<a " not in json.dumps(figure)


def test_modality_names_and_event_messages_with_html_are_plain_text_in_the_run_charts():
    records = [
        {"epoch": 1, "val_acc": 0.5, f"shapley.{EVIL}": 0.1, f"val_acc.{EVIL}": 0.4, f"arm_score.{EVIL}": 1.0,
         f"grad_norm.{EVIL}": 1.0, f"ogm_coeff.{EVIL}": 1.0, "dominant": EVIL},
        {"epoch": 2, "val_acc": 0.6, f"shapley.{EVIL}": 0.1, "shapley.b": 0.3, "dominant": "b"},
    ]
    events = [{"id": 1, "epoch": 2, "kind": "dominance_switch", "message": f"switched from {EVIL} to b"}]
    figures = run_detail.build_figures(records, events, "light", "ogm")
    declared = figures.pop("method")
    assert len(declared) == 1
    for name, figure in [*figures.items(), *(("method", f) for f in declared)]:
        text = figure.to_json()
        assert EVIL not in text and "<a " not in text, name
    legend = [t.name for t in figures["accuracy"].data]
    assert ESCAPED in legend
    assert figures["dominance"].data[-1].hovertext == (f"switched from {ESCAPED} to b",)


def test_a_metric_named_in_the_compare_link_is_plain_text_in_the_titles():
    figure = fx.compare_figure([], EVIL)
    assert figure["layout"]["title"]["text"] == ESCAPED
    drawn = fx.compare_figure([{"id": 1, "name": "r", "records": [{"epoch": 1}]}], EVIL)
    assert drawn["layout"]["title"]["text"] == ESCAPED and drawn["layout"]["yaxis"]["title"]["text"] == ESCAPED


# -- what a callback request may hold -----------------------------------------------------------------


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_callback_request_with_a_number_json_cannot_hold_is_a_400(client, number):
    answer = post_raw(client, f'{{"output": {number}}}')
    assert answer.status_code == 400
    assert "not valid JSON" in answer.json()["detail"] and number.lstrip("-")[:3] in answer.json()["detail"]


def test_a_callback_request_nested_100000_deep_is_a_400(client):
    answer = post_raw(client, '{"output": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert answer.status_code == 400 and "nested deeper than" in answer.json()["detail"]


def test_a_callback_request_nested_past_the_limit_but_within_python_recursion_is_a_400(client, app):
    body = router_request(app, "/")
    body["inputs"][1]["value"] = json.loads("[" * 200 + "]" * 200)
    answer = post(client, body)
    assert answer.status_code == 400 and "nested deeper than 64 levels" in answer.json()["detail"]


@pytest.mark.parametrize("text, problem", [('"a\\u0000b"', "NUL"), ('"\\ud800"', "lone surrogates")])
def test_text_a_database_cannot_store_is_a_400(client, app, text, problem):
    body = json.dumps(router_request(app, "/", "?q=placeholder")).replace('"?q=placeholder"', text)
    answer = post_raw(client, body)
    assert answer.status_code == 400 and problem in answer.json()["detail"]


def test_a_callback_that_does_not_exist_is_a_400_naming_it(client, app):
    body = router_request(app, "/")
    body["output"] = "..format-disk.children.."
    answer = post(client, body)
    assert answer.status_code == 400 and "no callback updates '..format-disk.children..'" in answer.json()["detail"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b: b.update(output=5), "output: expected"),
        (lambda b: b.update(inputs=b["inputs"][:1]), "inputs: expected 2 entries"),
        (lambda b: b["inputs"][0].update(id="runs-table"), "inputs[0]: expected the id url"),
        (lambda b: b["inputs"][0].update(property="href"), "inputs[0]: expected property 'pathname'"),
        (lambda b: b.update(state="light"), "state: expected 1 entry,"),
        (lambda b: b.update(outputs=b["outputs"][:2]), "outputs: expected 5 entries"),
        (lambda b: b.update(changedPropIds=["runs-table.children"]), "is not one of the request's inputs"),
        (lambda b: b.update(changedPropIds=[["url.pathname"]]), "is not one of the request's inputs"),
        (lambda b: b["inputs"][1].update(value={"search": 1}), "search: Input should be a valid string"),
    ],
)
def test_a_callback_request_that_does_not_match_its_callback_is_a_400(client, app, change, message):
    body = router_request(app, "/")
    change(body)
    answer = post(client, body)
    assert answer.status_code == 400 and message in answer.json()["detail"]


def test_a_body_that_is_not_json_is_refused(client):
    assert post_raw(client, "{output").status_code == 400
    answer = client.post("/_dash-update-component", content="x", headers={**ORIGIN, "Content-Type": "text/plain"})
    assert answer.status_code == 415 and "application/json" in answer.json()["detail"]


def test_a_pending_action_the_dashboard_does_not_have_is_a_400(client, app, store):
    run = make_run(store)
    body = callback_request(app, "runs-message.children", {
        "runs-confirm-ok.n_clicks": 1,
        "runs-pending.data": {"action": "format-disk", "ids": [run["id"]]},
    })
    answer = post(client, body)
    assert answer.status_code == 400
    assert "unknown action 'format-disk'; expected one of cancel, retry, delete" in answer.json()["detail"]
    assert store.get_run(run["id"])["status"] == "queued"


@pytest.mark.parametrize("pending", [{"action": "cancel", "ids": ["1"]}, {"action": "cancel", "ids": [2**70]},
                                     {"action": "cancel"}, {"action": ["cancel"], "ids": [1]}])
def test_a_malformed_pending_action_is_a_400_naming_the_field(client, app, pending):
    body = callback_request(app, "runs-message.children", {"runs-confirm-ok.n_clicks": 1, "runs-pending.data": pending})
    answer = post(client, body)
    assert answer.status_code == 400 and answer.json()["detail"].startswith("pending.")


def test_a_run_id_in_page_state_beyond_64_bits_is_a_400(client, app):
    body = callback_request(app, "run-records.data", {"run-interval.n_intervals": 1, "run-id.data": 2**70,
                                                      "run-cursor.data": {}})
    answer = post(client, body)
    assert answer.status_code == 400 and "run_id: Input should be less than or equal to" in answer.json()["detail"]


def test_records_sent_back_by_the_run_page_must_be_epochs(client, app, store):
    run = make_run(store, epochs=1)
    body = callback_request(app, "run-graph-dominance.figure", {
        "run-records.data": [{"epoch": "one", "dominant": ["a"]}], "run-events.data": [], "theme.data": "light",
        "run-id.data": run["id"],
    })
    answer = post(client, body)
    assert answer.status_code == 400 and "records[0]" in answer.json()["detail"]


def test_a_cursor_the_server_never_issued_is_a_400(client, app):
    body = callback_request(app, "runs-table.children", {
        "runs-refresh.data": 1, "runs-sort.data": "-created_at",
        "runs-paging.data": {"cursors": [None, "not-a-cursor"], "index": 1, "next": None},
    })
    answer = post(client, body)
    assert answer.status_code == 400 and "cursor" in answer.json()["detail"]


def test_an_unknown_sort_is_a_400_naming_the_choices(client, app):
    body = callback_request(app, "runs-table.children", {"runs-refresh.data": 1, "runs-sort.data": "password"})
    answer = post(client, body)
    assert answer.status_code == 400 and "sort: unknown field 'password'" in answer.json()["detail"]


def test_strict_json_names_what_it_refuses():
    assert strict_loads('{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    for text, problem in [("NaN", "NaN"), ("1e400", "too large"), ('"\\u0000"', "NUL"), ("[" * 65 + "]" * 65, "64")]:
        with pytest.raises(ValueError, match=problem):
            strict_loads(text)


def test_a_json_option_in_the_launch_form_may_not_be_nan_or_nested_without_end():
    field = {f.name: f for f in launch.section_fields("dataset", "synthetic-shift", "", "")}["schedule"]
    assert sf.parse(field, "[" * 100_000) == (sf.OMIT, "Not valid JSON.")
    assert sf.parse(field, "NaN") == ("NaN", None)  # text, which the options then refuse by name
    numbers = sf.Field(name="weights", title="weights", kind="list", item_type="number")
    assert sf.parse(numbers, "1, nan")[1] == "Write numbers separated by commas."


def test_a_seed_list_is_read_only_as_far_as_the_bound():
    assert launch.parse_seeds(",".join(["0-99"] * 200_000)) == ([], f"At most {launch.MAX_SEEDS} seeds at once.")
    assert launch.parse_seeds("1" * 5000)[1] == "Write seeds like 0, 1, 2 or a range like 0-4."


# -- bounded lists ------------------------------------------------------------------------------------


def test_ids_in_a_link_are_read_in_one_pass_and_bounded():
    assert ids_from_csv("3, 1,3,x,²,0,99999999999999999999,7", 10, "here") == [3, 1, 7]
    with pytest.raises(TooManyRuns, match=r"Too many runs \(at most 500 here\): 110000 given"):
        ids_from_csv(",".join(map(str, range(1, 110_001))), 500, "here")
    assert ids_from_csv(",".join(["5"] * 110_000), 1, "here") == [5]  # duplicates are one run


def test_a_compare_link_with_too_many_runs_draws_none_and_says_why(store):
    ctx = Context(store=store, settings=Settings(), queue=RecordingQueue())
    view = compare.parse_view("?runs=" + ",".join(map(str, range(1, 110_001))))
    assert view["runs"] == [] and view["refused"] == (
        f"Too many runs (at most {MAX_COMPARED} compared at once): 110000 given."
    )
    shown = compare.render(ctx, view, "light")
    assert "Too many runs" in json.dumps(shown["notes"], default=str)


def test_the_compare_page_with_110000_runs_in_its_link_answers_with_the_reason(client, app):
    search = "?runs=" + ",".join(map(str, range(1, 110_001)))
    answer = post(client, router_request(app, "/compare", search))
    assert answer.status_code == 200
    assert f"Too many runs (at most {MAX_COMPARED} compared at once): 110000 given." in answer.text


def test_cancelling_80000_runs_at_once_is_refused_on_the_page_and_touches_none(client, app, store):
    runs = [make_run(store) for _ in range(2)]
    ids = [r["id"] for r in runs] + list(range(1000, 1000 + 80_000))
    body = callback_request(app, "runs-message.children", {
        "runs-confirm-ok.n_clicks": 1, "runs-pending.data": {"action": "cancel", "ids": ids},
    })
    answer = post(client, body)
    assert answer.status_code == 200
    assert f"Too many runs (at most {MAX_IDS} per action): 80002 given." in answer.text
    assert [store.get_run(r["id"])["status"] for r in runs] == ["queued", "queued"]


def test_perform_refuses_an_unknown_action_and_too_many_runs(store):
    ctx = Context(store=store, settings=Settings(), queue=RecordingQueue())
    with pytest.raises(BadInput, match="unknown action"):
        actions.perform(ctx, "shutdown", [1])
    color, message = actions.perform(ctx, "delete", list(range(1, MAX_IDS + 2)))
    assert color == "danger" and message.startswith(f"Too many runs (at most {MAX_IDS}")


def test_the_demo_button_opens_the_new_sweep_s_page(client, app, store):
    answer = post(client, callback_request(app, "url.href", {"demo-sweep.n_clicks": 1}, trigger="demo-sweep"))
    assert answer.status_code == 200, answer.text
    (sweep,) = store.list_sweeps()
    assert answer.json()["response"]["url"]["href"] == f"/sweeps/{sweep['id']}"


def test_ticking_more_runs_than_the_bound_keeps_the_selection_and_says_why(client, app):
    spec_key = next(k for k in app.state.dashboard.callback_map if k.startswith("..runs-selected.data"))
    spec = app.state.dashboard.callback_map[spec_key]
    ticks = [{"id": {"type": "run-check", "index": i}, "property": "value", "value": True}
             for i in range(1, MAX_IDS + 2)]
    body = {
        "output": spec_key,
        "outputs": [o.to_dict() for o in spec["output"]],
        "inputs": [ticks],
        "state": [{"id": "runs-selected", "property": "data", "value": [1, 2]}],
        "changedPropIds": ['{"index":1,"type":"run-check"}.value'],
    }
    answer = post(client, body)
    assert answer.status_code == 200, answer.text
    response = answer.json()["response"]
    assert "runs-selected" not in response  # the selection stays as it was
    assert f"At most {MAX_IDS} runs can be selected" in response["runs-selection-label"]["children"]
    ticks[0]["id"]["index"] = "1; drop table runs"
    assert post(client, body).status_code == 400


# -- what the server serves ---------------------------------------------------------------------------


@pytest.mark.service
def test_static_serves_nothing_from_the_working_directory_but_assets_still_load(tmp_path, monkeypatch, store):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "secret.txt").write_text("the lab's password")
    (tmp_path / "secret.txt").write_text("the lab's password")
    app = create_app(Settings(home=tmp_path / "home"), store, RecordingQueue())
    with TestClient(app) as client:
        for path in ("/static/secret.txt", "/static/../secret.txt", "/secret.txt"):
            answer = client.get(path)
            assert answer.status_code == 404 and "password" not in answer.text, path
        css = client.get("/assets/2-armscope.css")
        assert css.status_code == 200 and "text/css" in css.headers["content-type"]
        assert client.get("/assets/../../README.md").status_code == 404


def test_unknown_pages_are_404_and_still_show_the_dashboard(client):
    for path in ("/nope", "/runs/x", f"/runs/{2**70}"):
        answer = client.get(path)
        assert answer.status_code == 404 and "_dash-renderer" in answer.text, path
    for path in ("/", "/launch", "/compare", "/runs/1", "/runs/1/"):
        assert client.get(path).status_code == 200, path


def test_a_run_page_for_an_id_beyond_64_bits_is_not_found(client, app):
    answer = post(client, router_request(app, f"/runs/{2**70}"))
    assert answer.status_code == 200 and "Page not found" in answer.text


def test_select_all_answers_one_value_per_box_the_page_has_whatever_the_state_claims(client, app):
    boxes = [{"id": {"type": "run-check", "index": i}, "property": "value"} for i in (1, 2)]
    body = {
        "output": '{"index":["ALL"],"type":"run-check"}.value',
        "outputs": boxes,
        "inputs": [{"id": "runs-check-all", "property": "value", "value": True}],
        "state": [[{**box, "value": False} for box in boxes * 3]],
        "changedPropIds": ["runs-check-all.value"],
    }
    answer = post(client, body)
    assert answer.status_code == 200, answer.text
    assert [v["value"] for v in answer.json()["response"].values()] == [True, True]


ODD_VALUES = [None, -1, 2**70, "x", [], {"a": [1]}, True, 1.5, [{}], ["?runs=1"]]


def test_no_callback_answers_an_odd_value_in_any_input_or_state_with_a_500(app, store):
    """Each value the browser holds for a page (inputs and stores), replaced in turn by something odd."""
    make_run(store, epochs=1)
    callbacks = {key: spec for key, spec in app.state.dashboard.callback_map.items() if "callback" in spec}
    failures = []
    with TestClient(app, raise_server_exceptions=False) as client:
        for output, spec in callbacks.items():
            outputs = [o.to_dict() for o in (spec["output"] if isinstance(spec["output"], list) else [spec["output"]])]
            outputs = [[] if o["id"].startswith("{") else o for o in outputs]
            slots = [("inputs", i) for i in range(len(spec["inputs"]))] + [("state", i) for i in range(len(spec["state"]))]
            for slot, value in ((slot, value) for slot in slots for value in ODD_VALUES):
                body = {
                    "output": output,
                    "outputs": outputs if isinstance(spec["output"], list) else outputs[0],
                    "changedPropIds": [],
                    **{
                        key: [
                            [] if d["id"].startswith("{") else {**d, "value": value if (key, i) == slot else 1}
                            for i, d in enumerate(spec[key])
                        ]
                        for key in ("inputs", "state")
                    },
                }
                answer = post(client, body)
                if answer.status_code >= 500:
                    failures.append((output, slot, value, answer.text[:200]))
    assert failures == []
