"""Team-draft interleaving of two rankers' lists, with the team of every item.

Team draft (Radlinski, Kurup and Joachims 2008, "How does clickthrough data reflect
retrieval quality?", CIKM, Algorithm 2): like captains picking teams, in each round the
ranker with fewer picks so far (a coin decides ties) adds its highest-ranked item that is
not yet in the merged list, and that item joins its team. A click on an item is credited
to the item's team; per user, the ranker with more credit wins (the analysis is
:mod:`proving.stats.interleaving`).

The paper stops when either list runs out; here the other ranker keeps picking until
``length`` items are placed or both lists are used up, so short lists still fill the
page. Its extra picks are credited to it, as every pick is.

The coin is seeded (the gateway seeds it with the request id), so a merge can be
replayed exactly from the log.

Items are JSON values. Two items are the same document when they are equal, or, for
objects, when their ``id`` fields are equal.

Example:
    >>> merged = team_draft(["a", "b", "c"], ["b", "d", "a"], length=4, seed="req-1")
    >>> sorted(merged.items) == sorted(["a", "b", "c", "d"])
    True
    >>> credit_clicks(merged, [merged.items.index("d")])
    (0, 1)
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from proving.errors import ServeError

__all__ = ["InterleavedList", "credit_clicks", "item_key", "team_draft"]

Team = Literal["a", "b"]


def item_key(item: Any) -> str:
    """The identity of a ranked item: its ``id`` for objects, else the value itself."""
    if isinstance(item, dict) and "id" in item:
        return f"id:{json.dumps(item['id'], sort_keys=True)}"
    return json.dumps(item, sort_keys=True, default=str)


@dataclass(frozen=True)
class InterleavedList:
    """A merged list: ``items[i]`` was contributed by ranker ``teams[i]`` (``a`` or ``b``)."""

    items: tuple[Any, ...]
    teams: tuple[Team, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"items": list(self.items), "teams": list(self.teams)}


def team_draft(
    list_a: Sequence[Any], list_b: Sequence[Any], *, length: int, seed: str | int
) -> InterleavedList:
    """Merge two rankings by team draft (see the module docstring).

    Args:
        list_a: ranker A's list, best first.
        list_b: ranker B's list, best first.
        length: the most items in the merged list.
        seed: seeds the coin that breaks ties between the teams.

    Raises:
        ServeError: ``length`` is below 1.
    """
    if length < 1:
        raise ServeError(f"team_draft: length must be >= 1; got {length}.")
    rng = random.Random(str(seed))
    placed: set[str] = set()
    items: list[Any] = []
    teams: list[Team] = []
    picks = {"a": 0, "b": 0}
    cursor = {"a": 0, "b": 0}
    lists = {"a": list_a, "b": list_b}

    def next_unplaced(team: Team) -> Any | None:
        ranked = lists[team]
        while cursor[team] < len(ranked) and item_key(ranked[cursor[team]]) in placed:
            cursor[team] += 1
        return ranked[cursor[team]] if cursor[team] < len(ranked) else None

    while len(items) < length:
        heads = {"a": next_unplaced("a"), "b": next_unplaced("b")}
        available: list[Team] = [t for t in ("a", "b") if heads[t] is not None]
        if not available:
            break
        if len(available) == 1:
            team = available[0]
        elif picks["a"] != picks["b"]:
            team = "a" if picks["a"] < picks["b"] else "b"
        else:
            team = "a" if rng.random() < 0.5 else "b"
        item = heads[team]
        placed.add(item_key(item))
        items.append(item)
        teams.append(team)
        picks[team] += 1
    return InterleavedList(tuple(items), tuple(teams))


def credit_clicks(merged: InterleavedList, clicked_positions: Sequence[int]) -> tuple[int, int]:
    """Clicks credited to ranker A and to ranker B (positions are 0-based).

    Raises:
        ServeError: a position outside the list.
    """
    credit = {"a": 0, "b": 0}
    for position in clicked_positions:
        if not 0 <= position < len(merged.teams):
            raise ServeError(
                f"credit_clicks: click position {position} is outside the list of "
                f"{len(merged.teams)} items. Fix: pass 0-based positions of shown items."
            )
        credit[merged.teams[position]] += 1
    return credit["a"], credit["b"]
