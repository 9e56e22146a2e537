"""`proving judge FILE`: Kayenta-style canary judgement of raw metric values.

FILE (CSV or JSON rows) holds one value per row: columns ``metric``, ``arm`` (``baseline``
or ``canary``) and ``value``. ``--spec`` (YAML or JSON) says how each metric is judged::

    alpha: 0.05
    pass_threshold: 95
    marginal_threshold: 75
    group_weights: {latency: 2}
    metrics:
      - {name: latency_ms, direction: increase, allowed_increase: 0.1, group: latency}
      - {name: errors, direction: increase, critical: true}

Without ``--spec`` every metric in FILE is judged with ``direction: either`` and no
tolerance. ``--exit-code`` makes the command usable as a pipeline gate: exit 0 on pass,
1 otherwise (marginal, fail, no data).

With ``--sequential`` an optional ``look`` column (1, 2, ...) orders the rows into looks,
replayed through :class:`~proving.stats.canary_sequential.SequentialCanaryTest` (valid
under any number of looks); tolerances then need a fixed ``reference`` per metric in the
spec. Any harmful alarm fails the canary (no score: each metric's test holds its alpha).

Example:
    proving judge canary.csv --spec canary.yaml
    proving judge canary.csv --spec canary.yaml --json --exit-code
    proving judge looks.csv --spec canary.yaml --sequential
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.table import Table

from proving.errors import StatsInputError
from proving.stats.table import read_records

if TYPE_CHECKING:  # the statistics load with the command, not with the command line
    from proving.stats.canary import CanaryJudgement, CanaryMetricSpec
    from proving.stats.canary_sequential import SequentialCanaryResult

_COLOURS = {"pass": "green", "high": "red", "low": "red", "nodata": "dim"}
_DECISION = {"pass": "green", "marginal": "yellow", "fail": "red", "nodata": "dim"}


class MetricEntry(BaseModel):
    """One metric of a canary spec file."""

    model_config = ConfigDict(extra="forbid")
    name: str
    direction: Literal["increase", "decrease", "either"] = "either"
    allowed_increase: float = Field(default=0.0, ge=0.0)
    allowed_decrease: float = Field(default=0.0, ge=0.0)
    critical: bool = False
    group: str = "default"
    reference: float | None = None  # fixed scale of the tolerances in --sequential mode

    def metric_spec(self) -> CanaryMetricSpec:
        """The library's spec of this metric."""
        from proving.stats.canary import CanaryMetricSpec

        return CanaryMetricSpec(**self.model_dump(exclude={"reference"}))


class CanaryJudgeSpec(BaseModel):
    """A canary spec file: the metrics and the scoring thresholds."""

    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    pass_threshold: float = Field(default=95.0, ge=0.0, le=100.0)
    marginal_threshold: float = Field(default=75.0, ge=0.0, le=100.0)
    group_weights: dict[str, float] = Field(default_factory=dict)
    metrics: list[MetricEntry]


def load_judge_spec(path: Path) -> CanaryJudgeSpec:
    """Read and validate a canary spec (YAML or JSON); errors name the file and field."""
    if not path.is_file():
        raise StatsInputError(f"{path}: no such file; give the path of a YAML or JSON spec.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise StatsInputError(f"{path}: not valid YAML/JSON: {exc}.") from None
    try:
        return CanaryJudgeSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise StatsInputError(
            f"{path}: field `{field}`: {first['msg']}; got {first.get('input')!r}. "
            "See `proving judge --help` for the spec format."
        ) from None


ByLook = dict[str, dict[int, tuple[list[float], list[float]]]]


def read_values(path: Path) -> ByLook:
    """Group (metric, arm, value[, look]) rows: metric -> look -> (baseline, canary)."""
    out: ByLook = {}
    for where, row in read_records(path):
        if not isinstance(row, dict):
            raise StatsInputError(f"{where}: a row must be an object with metric, arm, value.")
        missing = [k for k in ("metric", "arm", "value") if row.get(k) in (None, "")]
        if missing:
            raise StatsInputError(
                f"{where}: field(s) {missing} missing; every row needs `metric`, `arm` "
                "(baseline or canary) and `value`."
            )
        arm = str(row["arm"]).strip()
        if arm not in ("baseline", "canary"):
            raise StatsInputError(f"{where}: `arm` must be 'baseline' or 'canary'; got {arm!r}.")
        try:
            value = float(row["value"])
            look = int(str(row.get("look") or 1).strip())
        except (TypeError, ValueError):
            raise StatsInputError(
                f"{where}: `value` must be a number and `look` a whole number; got "
                f"{row['value']!r} and {row.get('look')!r}."
            ) from None
        pair = out.setdefault(str(row["metric"]).strip(), {}).setdefault(look, ([], []))
        pair[0 if arm == "baseline" else 1].append(value)
    return out


def _load(data_path: Path, spec_path: Path | None) -> tuple[ByLook, CanaryJudgeSpec]:
    """The values and the spec; every metric with values needs an entry in the spec."""
    data = read_values(data_path)
    spec = (
        load_judge_spec(spec_path)
        if spec_path
        else CanaryJudgeSpec(metrics=[MetricEntry(name=m) for m in data])
    )
    for m in spec.metrics:  # a metric in the spec with no rows is judged as "no data"
        data.setdefault(m.name, {})
    extra = sorted(set(data) - {m.name for m in spec.metrics})
    if extra:
        raise StatsInputError(
            f"{data_path}: metric(s) {extra} have values but no entry in {spec_path}; add them "
            "to the spec's `metrics` or drop their rows."
        )
    return data, spec


def run_judge(data_path: Path, spec_path: Path | None, alpha: float | None) -> CanaryJudgement:
    """Read the values and the spec, judge the canary on all looks pooled."""
    from proving.stats.canary import judge

    data, spec = _load(data_path, spec_path)
    pooled = {
        name: (
            [v for b, _ in looks.values() for v in b],
            [v for _, c in looks.values() for v in c],
        )
        for name, looks in data.items()
    }
    return judge(
        pooled,
        [m.metric_spec() for m in spec.metrics],
        alpha=spec.alpha if alpha is None else alpha,
        group_weights=spec.group_weights or None,
        pass_threshold=spec.pass_threshold,
        marginal_threshold=spec.marginal_threshold,
    )


def run_sequential(
    data_path: Path, spec_path: Path | None, alpha: float | None
) -> list[list[SequentialCanaryResult]]:
    """Replay the looks through one :class:`SequentialCanaryTest` per metric."""
    from proving.stats.canary_sequential import SequentialCanaryTest

    data, spec = _load(data_path, spec_path)
    out = []
    for entry in spec.metrics:
        test = SequentialCanaryTest(
            entry.metric_spec(),
            alpha=spec.alpha if alpha is None else alpha,
            reference=entry.reference,
        )
        looks = data[entry.name]
        out.append([test.update(*looks[k]) for k in sorted(looks)] or [test.update([], [])])
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"


def render(verdict: CanaryJudgement, console: Console) -> None:
    """Print the per-metric table, then the score and the decision with its reason."""
    alpha = verdict.metrics[0].alpha if verdict.metrics else 0.05
    table = Table(title=f"canary vs baseline (Mann-Whitney, {100 * (1 - alpha):g}% HL interval)")
    for column in ("metric", "group", "n base", "n canary", "median base", "median canary",
                   "shift", "interval", "p-value", "result", "notes"):  # fmt: skip
        table.add_column(
            column, justify="left" if column in ("metric", "group", "notes") else "right"
        )
    for m in verdict.metrics:
        interval = "-" if m.ci_lower is None else f"[{_fmt(m.ci_lower)}, {_fmt(m.ci_upper)}]"
        flag = " (critical)" if m.critical else ""
        result = f"[{_COLOURS[m.classification]}]{m.classification}[/]{flag}"
        if m.passed is True and m.classification != "pass":
            result = f"[green]{m.classification} (ok)[/]{flag}"
        table.add_row(
            m.metric, m.group, str(m.n_baseline), str(m.n_canary), _fmt(m.baseline_median),
            _fmt(m.canary_median), _fmt(m.estimate), interval, _fmt(m.p_value), result,
            m.reason or "; ".join(m.warnings),
        )  # fmt: skip
    console.print(table)
    score = "-" if verdict.score is None else f"{verdict.score:.1f}"
    colour = _DECISION[verdict.decision]
    why = f" ({verdict.reason})" if verdict.reason else ""
    console.print(
        f"score {score} (pass >= {verdict.pass_threshold:g}, marginal >= "
        f"{verdict.marginal_threshold:g}): [{colour}]{verdict.decision}[/]{why}",
        highlight=False,
    )


def sequential_decision(histories: list[list[SequentialCanaryResult]]) -> str:
    """``fail`` when any metric raised a harmful alarm, ``nodata`` when none has data yet,
    else ``pass`` (no alarm so far)."""
    final = [h[-1] for h in histories]
    if any(r.passed is False for r in final):
        return "fail"
    return "nodata" if all(r.passed is None for r in final) else "pass"


def render_sequential(histories: list[list[SequentialCanaryResult]], console: Console) -> None:
    """Print each metric's final state after the last look, then the overall decision."""
    table = Table(title="sequential canary judge (sign test on pairs, valid at every look)")
    for column in ("metric", "looks", "pairs", "P(canary > base)", "p high", "p low",
                   "result", "stopped at look", "notes"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("metric", "notes") else "right")
    for history in histories:
        r = history[-1]
        result = f"[{_COLOURS[r.classification]}]{r.classification}[/]"
        if r.passed is True and r.classification != "pass":
            result = f"[green]{r.classification} (ok)[/]"
        stopped = "-" if r.stopped_at_look is None else str(r.stopped_at_look)
        table.add_row(
            r.metric, str(r.look), str(r.n_pairs), _fmt(r.estimate), _fmt(r.p_value_high),
            _fmt(r.p_value_low), result, stopped, r.reason or "; ".join(r.warnings),
        )  # fmt: skip
    console.print(table)
    decision = sequential_decision(histories)
    text = {"pass": "no alarm so far", "fail": "a metric regressed", "nodata": "no data yet"}
    console.print(f"[{_DECISION[decision]}]{decision}[/]: {text[decision]}", highlight=False)


def judge_command(
    file: Annotated[Path, typer.Argument(help="CSV or JSON rows: metric, arm, value[, look].")],
    spec: Annotated[
        Path | None, typer.Option(help="YAML/JSON canary spec (metrics, thresholds).")
    ] = None,
    alpha: Annotated[
        float | None, typer.Option(help="1 - confidence of the shift intervals (overrides spec).")
    ] = None,
    sequential: Annotated[
        bool,
        typer.Option("--sequential", help="Replay the `look` column through the sequential test."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the judgement as JSON.")] = False,
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help="Exit 1 unless the canary passes.")
    ] = False,
) -> None:
    """Judge a canary against its baseline, metric by metric, and score it (Kayenta-style)."""
    try:
        if sequential:
            histories = run_sequential(file, spec, alpha)
            decision = sequential_decision(histories)
        else:
            verdict = run_judge(file, spec, alpha)
            decision = verdict.decision
    except StatsInputError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=2) from None
    if as_json and sequential:
        plain = [{"metric": h[-1].metric, "looks": [r.to_dict() for r in h]} for h in histories]
        typer.echo(json.dumps({"decision": decision, "metrics": plain}, indent=2, allow_nan=False))
    elif as_json:
        typer.echo(verdict.to_json(indent=2))
    elif sequential:
        render_sequential(histories, Console())
    else:
        render(verdict, Console())
    if exit_code and decision != "pass":
        raise typer.Exit(code=1)
