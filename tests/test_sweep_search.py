"""A sweep's search over any RunConfig field: how a spec expands into runs, and what it refuses before any run."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from armscope.plugins import METHODS
from service.errors import InvalidConfig
from service.search import Axis
from service.sweeps import MAX_RUNS, MAX_RUNS_LIMIT, SweepSpec
from tests.support import FORM_RUN


def spec(**fields) -> SweepSpec:
    return SweepSpec(**{"config": FORM_RUN, "methods": ["arm"], "seeds": [0], **fields})


def errors(**fields) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as caught:
        spec(**fields)
    return [(e["loc"], e["msg"]) for e in caught.value.errors()]


def test_a_grid_makes_every_combination_of_the_searched_values_for_every_method_and_seed():
    sweep = spec(methods=["arm", "baseline"], seeds=[0, 1],
                 search={"lr": {"values": [0.01, 0.1]}, "model_options.feature_dim": {"range": [16, 48, 3]}})
    assert sweep.run_count == 2 * 2 * 3 * 2 == len(sweep.configs)
    combos = {(c.method, c.lr, c.model_options["feature_dim"], c.seed) for c in sweep.configs}
    assert len(combos) == 24 and {c[2] for c in combos} == {16, 32, 48}


def test_a_log_range_spaces_its_values_evenly_on_a_log_scale_and_a_range_on_a_linear_one():
    assert Axis(log_range=[1e-4, 1e-1, 4]).points() == [0.0001, 0.001, 0.01, 0.1]
    assert Axis(log_range=[16, 256, 5]).points() == [16, 32, 64, 128, 256]  # whole bounds: whole values
    assert Axis(range=[0, 1, 5]).points() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert Axis(range=[0.1, 0.3, 3]).points() == [0.1, 0.2, 0.3]  # not 0.30000000000000004
    assert Axis(values=[0.1, 0.1, 0.2]).points() == [0.1, 0.2]


@pytest.mark.parametrize("axis", [{"values": [1], "range": [0, 1, 2]}, {}, {"log_range": [0, 1, 3]},
                                  {"range": [0, 1, 0]}])
def test_an_axis_is_exactly_one_kind_with_sane_bounds(axis):
    with pytest.raises(ValidationError):
        Axis.model_validate(axis)


def test_a_random_search_draws_the_same_runs_for_the_same_spec_and_seed():
    search = {"lr": {"log_range": [1e-4, 1e-1, 4]}, "batch_size": {"range": [16, 128, 2]},
              "optimizer": {"values": ["sgd", "adam"]}}
    first = spec(search=search, strategy="random", samples=6, search_seed=7)
    again = spec(search=search, strategy="random", samples=6, search_seed=7)
    other = spec(search=search, strategy="random", samples=6, search_seed=8)
    drawn = [(c.lr, c.batch_size, c.optimizer) for c in first.configs]
    assert drawn == [(c.lr, c.batch_size, c.optimizer) for c in again.configs]
    assert drawn != [(c.lr, c.batch_size, c.optimizer) for c in other.configs]
    assert len(drawn) == 6 and all(1e-4 <= lr <= 1e-1 and 16 <= b <= 128 and isinstance(b, int) for lr, b, _ in drawn)


def test_a_random_search_needs_samples_and_a_grid_refuses_them():
    assert errors(search={"lr": {"values": [0.1]}}, strategy="random")[0][0] == ("samples",)
    assert errors(search={"lr": {"values": [0.1]}}, samples=3)[0][0] == ("samples",)


def test_a_sweep_over_its_cap_is_refused_naming_the_count_and_the_cap():
    assert spec().max_runs == MAX_RUNS
    [(loc, message)] = errors(seeds=list(range(10)), search={"lr": {"range": [0.01, 1, 30]}})
    assert loc == ("max_runs",) and "300 runs" in message and f"max_runs ({MAX_RUNS})" in message
    assert str(MAX_RUNS_LIMIT) in message
    assert spec(seeds=list(range(10)), search={"lr": {"range": [0.01, 1, 30]}}, max_runs=300).run_count == 300
    assert errors(max_runs=MAX_RUNS_LIMIT + 1)[0][0] == ("max_runs",)


def test_a_huge_grid_is_refused_without_being_made():
    search = {f: {"range": [1, 100, 100]} for f in ("epochs", "batch_size", "model_options.feature_dim")}
    [(loc, message)] = errors(search=search)
    assert loc == ("max_runs",) and "1,000,000 runs" in message


@pytest.mark.parametrize(
    ("path", "hint"),
    [("lrr", "did you mean 'lr'?"), ("alpha", "did you mean 'method_options.alpha'?"),
     ("method_options.alpah", "did you mean 'alpha'?"), ("dataset_options.n_sample", "did you mean 'n_samples'?"),
     ("model_options.encoder.hiden", "did you mean 'hidden'?")],
)
def test_a_field_that_is_not_a_run_config_field_or_option_is_refused_with_a_near_miss_named(path, hint):
    [(loc, message)] = errors(methods=["ogm"], search={path: {"values": [1]}})
    assert loc == ("search", path) and hint in message


def test_fields_the_sweep_sets_itself_cannot_be_searched():
    [(loc, message)] = errors(search={"seed": {"values": [1, 2]}})
    assert loc == ("search", "seed") and "seeds" in message


def test_a_bad_method_is_one_error_at_its_place_in_methods_naming_the_registered_methods():
    [(loc, message)] = errors(methods=["arm", "ogm-gee"], seeds=[0, 1, 2])
    assert loc == ("methods", 1)
    assert "'ogm-gee'" in message and "did you mean 'ogm-ge'?" in message and ", ".join(METHODS.names()) in message


def test_a_method_option_is_searched_only_for_the_methods_that_have_it():
    sweep = spec(methods=["ogm", "baseline"], seeds=[0], search={"method_options.alpha": {"values": [0.5, 1.0]}})
    assert sorted((c.method, c.method_options.get("alpha")) for c in sweep.configs) == [
        ("baseline", None), ("ogm", 0.5), ("ogm", 1.0)]


def test_runs_are_named_by_their_method_swept_values_and_seed():
    sweep = spec(methods=["ogm"], seeds=[0, 1],
                 search={"lr": {"values": [0.01]}, "method_options.alpha": {"values": [0.5]}})
    assert [c.name for c in sweep.configs] == ["ogm-lr0.01-alpha0.5-s0", "ogm-lr0.01-alpha0.5-s1"]
    named = spec(config={**FORM_RUN, "name": "study"}, search={"lr": {"values": [0.01, 0.1]}})
    assert [c.name for c in named.configs] == ["study-lr0.01-s0", "study-lr0.1-s0"]


def test_a_bad_searched_value_is_reported_once_at_its_field_with_the_runs_it_spoils():
    with pytest.raises(InvalidConfig) as caught:
        spec(methods=["arm", "baseline"], seeds=[0, 1], search={"lr": {"values": [0.01, 20]}}).configs
    [problem] = caught.value.problems
    assert problem["loc"] == ["search", "lr"]
    assert "lr=20" in problem["msg"] and "less than or equal to 10" in problem["msg"] and "(4 runs)" in problem["msg"]


def test_a_sweep_without_a_search_is_the_methods_by_seeds_grid_it_always_was():
    sweep = spec(methods=["arm", "baseline"], seeds=[0, 1])
    assert [(c.method, c.seed, c.name) for c in sweep.configs] == [
        ("arm", 0, None), ("arm", 1, None), ("baseline", 0, None), ("baseline", 1, None)]
    assert sweep.search == {} and sweep.strategy == "grid"
