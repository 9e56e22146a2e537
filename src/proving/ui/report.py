"""Self-contained HTML reports with interactive plots (plotly, embedded: works offline)."""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go

from proving.simulate.demo import DemoReport
from proving.stats.results import ComparisonResult


def _forest(report: DemoReport) -> go.Figure:
    """Each metric's lift with its interval, with and without CUPED, against the truth."""
    fig = go.Figure()
    names = [m.metric for m in report.metrics]
    for label, attribute, offset, color in (
        ("with CUPED", "with_cuped", -0.12, "#1f77b4"),
        ("without CUPED", "without_cuped", 0.12, "#aaaaaa"),
    ):
        xs, ys, lo, hi = [], [], [], []
        for i, m in enumerate(report.metrics):
            r: ComparisonResult = getattr(m, attribute)
            if r.estimate is None or r.ci_lower is None or r.ci_upper is None:
                continue
            xs.append(100 * r.estimate)
            ys.append(i + offset)
            lo.append(100 * (r.estimate - r.ci_lower))
            hi.append(100 * (r.ci_upper - r.estimate))
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                name=label,
                marker={"color": color, "size": 9},
                error_x={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo},
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[100 * m.true_lift for m in report.metrics],
            y=list(range(len(names))),
            mode="markers",
            name="true lift",
            marker={"symbol": "x", "size": 12, "color": "#d62728"},
        )
    )
    fig.add_vline(x=0, line_dash="dot", line_color="#666")
    fig.update_layout(
        title="Relative lift (%) with 95% intervals",
        yaxis={"tickmode": "array", "tickvals": list(range(len(names))), "ticktext": names},
        xaxis_title="lift, %",
        height=120 + 90 * len(names),
        template="plotly_white",
    )
    return fig


def _sequence(report: DemoReport) -> go.Figure:
    """The monitored metric look by look: estimate, always-valid band, truth and the stop."""
    looks = [x for x in report.monitor if x.estimate is not None]
    days = [x.look for x in looks]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=days + days[::-1],
            y=[100 * (x.running_ci_upper or 0) for x in looks]
            + [100 * (x.running_ci_lower or 0) for x in looks[::-1]],
            fill="toself",
            fillcolor="rgba(31,119,180,0.2)",
            line={"width": 0},
            name="always-valid 95% interval",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=days,
            y=[100 * (x.estimate or 0) for x in looks],
            name="estimate",
            mode="lines+markers",
        )
    )
    fig.add_hline(
        y=100 * report.monitor_true_lift,
        line_dash="dash",
        line_color="#d62728",
        annotation_text="true lift",
    )
    fig.add_hline(y=0, line_dash="dot", line_color="#666")
    if report.stopped_at is not None:
        fig.add_vline(
            x=report.stopped_at.look,
            line_color="#2ca02c",
            annotation_text=f"stopped: {report.stopped_at.decision.replace('_', ' ')}",
        )
    fig.update_layout(
        title=f"Sequential monitor on {report.monitor_metric}: one look a day",
        xaxis_title="day",
        yaxis_title="relative lift, %",
        template="plotly_white",
        height=420,
    )
    return fig


def _live(report: DemoReport) -> go.Figure:
    """The live loop: A/B lifts from the stored events vs truth, and shadow latencies."""
    from plotly.subplots import make_subplots

    live = report.live
    assert live is not None
    fig = make_subplots(
        rows=1, cols=2, column_widths=[0.6, 0.4],
        subplot_titles=("A/B phase: relative lift (%) with 95% intervals",
                        "Shadow phase: model latency logged by the gateway (ms)"),
    )  # fmt: skip
    ab = [m for m in live.ab if m.result.estimate is not None]
    est = [m.result for m in ab]
    fig.add_trace(
        go.Scatter(
            x=[100 * (r.estimate or 0) for r in est],
            y=[m.metric for m in ab],
            mode="markers",
            name="estimate",
            marker={"color": "#1f77b4", "size": 9},
            error_x={
                "type": "data", "symmetric": False,
                "array": [100 * ((r.ci_upper or 0) - (r.estimate or 0)) for r in est],
                "arrayminus": [100 * ((r.estimate or 0) - (r.ci_lower or 0)) for r in est],
            },
        ),
        row=1, col=1,
    )  # fmt: skip
    truth = [m for m in ab if m.true_lift is not None]
    fig.add_trace(
        go.Scatter(
            x=[100 * (m.true_lift or 0) for m in truth], y=[m.metric for m in truth],
            mode="markers", name="true lift",
            marker={"symbol": "x", "size": 12, "color": "#d62728"},
        ),
        row=1, col=1,
    )  # fmt: skip
    for stats in (live.shadow.served_latency, live.shadow.shadow_latency):
        fig.add_trace(
            go.Bar(
                x=["p50", "p90", "p99"], y=[stats.p50, stats.p90, stats.p99],
                name=f"{stats.role} ({stats.variant})",
            ),
            row=1, col=2,
        )  # fmt: skip
    fig.update_layout(
        title=f"Live loop: {sum(t.n_requests for t in live.traffic):,} HTTP requests "
        f"through the gateway; shadow agreement {100 * (live.shadow.agreement or 0):.1f}% "
        f"(truth {100 * live.shadow.true_agreement:.1f}%)",
        template="plotly_white",
        height=420,
        barmode="group",
    )
    return fig


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:+.2f}%"


def write_demo_report(report: DemoReport, path: str | Path) -> Path:
    """Write the demo's HTML report (plots and the JSON result) to ``path``."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure = _forest(report).to_html(full_html=False, include_plotlyjs=True)
    figure += _sequence(report).to_html(full_html=False, include_plotlyjs=False)
    if report.live is not None:
        figure += _live(report).to_html(full_html=False, include_plotlyjs=False)
    rows = "".join(
        f"<tr><td>{html.escape(m.metric)}</td><td>{m.kind}</td>"
        f"<td>{100 * m.true_lift:+.2f}%</td>"
        f"<td>{_percent(m.with_cuped.estimate)}</td>"
        f"<td>{'yes' if m.recovered else 'no'}</td>"
        f"<td>{'' if m.interval_narrowing is None else f'{100 * m.interval_narrowing:.0f}%'}</td>"
        "</tr>"
        for m in report.metrics
    )
    out.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>proving demo</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
        "td,th{padding:.3em .8em;text-align:right}</style></head><body>"
        f"<h1>proving demo: {report.n_units:,} simulated users</h1>"
        "<table><tr><th>metric</th><th>kind</th><th>true lift</th><th>estimate</th>"
        f"<th>truth recovered</th><th>CUPED narrowed CI by</th></tr>{rows}</table>"
        f"{figure}"
        f"<details><summary>result JSON</summary><pre>{html.escape(report.to_json())}</pre>"
        "</details></body></html>",
        encoding="utf-8",
    )
    return out
