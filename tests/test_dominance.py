import itertools

import pytest
import torch

from armscope.dominance import macro_f1, shapley_values


def value_function(players, v):
    return {
        frozenset(s): torch.tensor(float(v(frozenset(s))))
        for k in range(len(players) + 1)
        for s in itertools.combinations(players, k)
    }


def test_shapley_values_of_the_glove_game_are_exact():
    players = ["left", "right1", "right2"]
    values = value_function(players, lambda s: 1.0 if "left" in s and ({"right1", "right2"} & s) else 0.0)
    phi = shapley_values(values, players)
    assert phi["left"].item() == pytest.approx(2 / 3, abs=1e-12)
    assert phi["right1"].item() == pytest.approx(1 / 6, abs=1e-12)
    assert phi["right2"].item() == pytest.approx(1 / 6, abs=1e-12)


def test_shapley_values_sum_to_the_grand_coalition_minus_the_empty_set():
    players = ["a", "b", "c", "d"]
    gen = torch.Generator().manual_seed(0)
    table = {frozenset(s): torch.rand((), generator=gen) for k in range(5) for s in itertools.combinations(players, k)}
    phi = shapley_values(table, players)
    total = sum(p.item() for p in phi.values())
    assert total == pytest.approx((table[frozenset(players)] - table[frozenset()]).item(), abs=1e-12)


def test_shapley_of_an_additive_game_is_each_players_own_value():
    own = {"a": 0.1, "b": 0.5}
    phi = shapley_values(value_function(list(own), lambda s: sum(own[p] for p in s)), list(own))
    assert phi["a"].item() == pytest.approx(0.1) and phi["b"].item() == pytest.approx(0.5)


def test_macro_f1_matches_a_hand_computation():
    labels = torch.tensor([0, 0, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 0])
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp0 fn1 -> 0
    assert macro_f1(pred, labels, 3).item() == pytest.approx((0.5 + 0.8 + 0.0) / 3)
