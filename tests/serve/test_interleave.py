"""Team-draft interleaving: the invariants of Radlinski, Kurup and Joachims (2008)."""

from __future__ import annotations

import random

import pytest

from proving.errors import ServeError
from proving.serve.interleave import credit_clicks, team_draft


def _lists(rng: random.Random) -> tuple[list[str], list[str]]:
    pool = [f"d{i}" for i in range(12)]
    return rng.sample(pool, rng.randint(0, 10)), rng.sample(pool, rng.randint(0, 10))


def test_team_draft_invariants_on_random_lists() -> None:
    rng = random.Random(7)
    for trial in range(500):
        a, b = _lists(rng)
        length = rng.randint(1, 12)
        merged = team_draft(a, b, length=length, seed=trial)
        items, teams = list(merged.items), list(merged.teams)
        assert len(items) == len(set(items)) == min(length, len(set(a) | set(b)))
        for team, ranking in (("a", a), ("b", b)):
            picked = [i for i, t in zip(items, teams, strict=True) if t == team]
            assert all(p in ranking for p in picked)
            # a team's pick is its ranker's best item not already placed
            for pos, (item, t) in enumerate(zip(items, teams, strict=True)):
                if t == team:
                    best = next(x for x in ranking if x not in items[:pos])
                    assert item == best
        # while both lists still have unplaced items the teams stay within one pick
        both_open = all(any(x not in items for x in ranking) for ranking in (a, b))
        if both_open:
            assert abs(teams.count("a") - teams.count("b")) <= 1


def test_coin_is_fair_and_seeded() -> None:
    firsts = [team_draft(["x"], ["y"], length=1, seed=s).teams[0] for s in range(4000)]
    share = firsts.count("a") / len(firsts)
    assert abs(share - 0.5) < 3 * (0.25 / 4000) ** 0.5 + 1e-9
    assert team_draft(["x", "z"], ["y"], length=2, seed="r") == team_draft(
        ["x", "z"], ["y"], length=2, seed="r"
    )


def test_credit_clicks_and_bad_input() -> None:
    merged = team_draft(["a1", "a2"], ["b1", "b2"], length=4, seed=1)
    clicks = [i for i, item in enumerate(merged.items) if item.startswith("b")]
    assert credit_clicks(merged, clicks) == (0, 2)
    with pytest.raises(ServeError, match="outside the list of 4 items"):
        credit_clicks(merged, [4])
    with pytest.raises(ServeError, match="length must be >= 1"):
        team_draft(["a"], ["b"], length=0, seed=1)
