"""Draw the ratios of a benchmark run (``run.py``'s JSON) as one standalone SVG file.

``run.py`` calls :func:`write_svg` after each run; run this file to redraw a saved run::

    python benchmarks/chart.py [results.json] [chart.svg]

Standard library only, so the chart costs no dependency on a machine that can run the
benchmark. One horizontal bar per ratio minisio / other server, grouped by scenario (and a
codec group, minisio / python-socketio per packet). The x axis is logarithmic because the
ratios span ~0.9x to ~40x, and on a log axis 2x and 0.5x are equally far from parity; so the
bars start at parity (1x) and grow towards the value instead of from an arbitrary left edge.
The targets of ``run.py`` are marked on the bars they apply to.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import CODEC_TARGETS, LABELS, SCENARIOS, SERVERS, TARGETS, median

#: Bar colour per series: the compared servers, then the two codec directions.
COLOURS = {
    "raw": "#4e79a7",
    "psio": "#f28e2b",
    "node": "#59a14f",
    "baseline": "#76b7b2",
    "encode": "#b07aa1",
    "decode": "#9c755f",
}
SERIES_NAMES = {**LABELS, "encode": "codec encode", "decode": "codec decode"}
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
PLOT_WIDTH = 560  # px of the log axis; the label columns are sized around it
BAR, ROW, HEADING, GROUP_GAP = 15, 22, 26, 8  # px
MISSED = "#c0392b"


@dataclass
class Bar:
    """One ratio: its row label, legend series, value, printed value and target, if any."""

    label: str
    series: str
    value: float
    shown: str
    target: float | None = None


@dataclass
class Group:
    """Bars under one heading: a scenario, or the codec."""

    title: str
    bars: list[Bar]


# -- what to draw ---------------------------------------------------------------
def _usable(value: Any) -> bool:
    """A ratio a log axis can place: skipped or failed runs leave None (or 0) behind."""
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def ratio_targets() -> dict[tuple[str, str], float]:
    """(scenario, server) -> wanted ratio, from run.py's TARGETS (absolute ones left out)."""
    return {(name, other): wanted for _, name, _, other, wanted in TARGETS if other is not None}


def scenario_groups(summary: dict[str, Any]) -> list[Group]:
    """One group per end-to-end scenario with at least one ratio, in run.py's order."""
    targets = ratio_targets()
    groups = []
    for name, scenario in SCENARIOS.items():
        entry = summary.get(name)
        if scenario.kind == "idle" or not entry:
            continue
        ratios: dict[str, Any] = entry.get("ratios", {})
        order = {server: i for i, server in enumerate(SERVERS)}
        others = sorted(ratios, key=lambda s: order.get(s, len(order)))  # unknown ones last
        bars = [
            Bar(LABELS.get(s, s), s, ratios[s], f"{ratios[s]:.2f}x", targets.get((name, s)))
            for s in others
            if s != "minisio" and _usable(ratios[s])
        ]
        if bars:
            if scenario.lower_is_better:  # a time: the ratio is other / minisio
                title = f"{name}: {scenario.clients} sessions, {scenario.unit} (other / minisio)"
            else:
                clients = f"{scenario.clients} client{'s' if scenario.clients != 1 else ''}"
                title = f"{name}: {clients}, {scenario.unit}"
            groups.append(Group(title, bars))
    return groups


def codec_medians(codec: list[Any]) -> list[dict[str, Any]]:
    """Per packet, the median over repetitions; ``codec`` is a list of repetitions of rows
    (as run.py writes it) or one list of rows (as codec.run() returns it)."""
    if not codec:
        return []
    reps = codec if isinstance(codec[0], list) else [codec]
    rows = []
    for i, first in enumerate(reps[0]):
        same = [rep[i] for rep in reps if i < len(rep)]
        rows.append(
            {
                "case": first.get("case", f"packet {i + 1}"),
                **{k: median([r.get(k) for r in same]) for k in ("encode_ratio", "decode_ratio")},
            }
        )
    return rows


def codec_group(codec: list[Any]) -> list[Group]:
    """Encode and decode ratio of each packet; the targets apply to the first (chat) packet."""
    wanted = {key: value for _, key, value in CODEC_TARGETS}
    bars = []
    for i, row in enumerate(codec_medians(codec)):
        for key in ("encode_ratio", "decode_ratio"):
            value = row[key]
            if _usable(value):
                direction = key.removesuffix("_ratio")
                target = wanted.get(key) if i == 0 else None
                bars.append(
                    Bar(f"{row['case']} {direction}", direction, value, f"{value:.1f}x", target)
                )
    return [Group("codec vs python-socketio: ops/s", bars)] if bars else []


def subtitle(results: dict[str, Any]) -> str:
    """The machine line of run.py's tables, shortened to what explains the ratios."""
    info = results.get("machine") or {}
    settings = results.get("settings") or {}
    parts = []
    if "nproc" in info:
        parts.append(f"{info['nproc']} cores ({info.get('cpu', '?')})")
    if "python" in info:
        parts.append(f"Python {info['python']}")
    if "server_loop" in info:
        parts.append(f"server loop {info['server_loop']}")
    if "loadgen_loop" in info:
        parts.append(f"load generator loop {info['loadgen_loop']}")
    if "reps" in settings:
        parts.append(f"{settings['reps']} repetition(s), median of per-repetition ratios")
    if settings.get("quick"):
        parts.append("--quick")
    if settings.get("partial"):
        parts.append("PARTIAL (time budget used up)")
    return ", ".join(parts)


# -- geometry -------------------------------------------------------------------
def text_width(text: str, size: float) -> float:
    """Rough width of sans-serif text, enough to keep labels apart without a font engine."""
    return len(text) * size * 0.55


def nice_ticks() -> list[float]:
    """1-2-5 steps from 0.001x to 50000x: every ratio this chart can meet."""
    return [m * 10.0**e for e in range(-3, 5) for m in (1, 2, 5)]


def axis_range(groups: list[Group]) -> tuple[float, float]:
    """Ticks just outside every value, target and parity, with some room left of the lowest
    bar for its value label (:func:`fit_axis` makes sure of it)."""
    values = [1.0]
    for group in groups:
        for bar in group.bars:
            values.append(bar.value)
            if bar.target is not None:
                values.append(bar.target)
    ticks = nice_ticks()
    lo = max([t for t in ticks if t <= min(values) / 1.6] or [ticks[0]])
    hi = min([t for t in ticks if t >= max(values)] or [ticks[-1]])
    return lo, hi


class Axis:
    """Log scale from ratio to x pixel."""

    def __init__(self, lo: float, hi: float, left: float, width: float) -> None:
        self.lo, self.hi, self.left, self.width = lo, hi, left, width

    def x(self, value: float) -> float:
        span = math.log10(self.hi) - math.log10(self.lo)
        return self.left + self.width * (math.log10(value) - math.log10(self.lo)) / span

    def ticks(self) -> list[float]:
        """The 1-2-5 ticks in range, only the powers of ten when those would crowd."""
        inside = [t for t in nice_ticks() if self.lo <= t <= self.hi]
        if len(inside) > 10:
            inside = [t for t in inside if math.log10(t).is_integer()]
        return inside


def fit_axis(groups: list[Group], left: float) -> Axis:
    """The axis, its low end pushed down a tick at a time until the value labels drawn left
    of bars below parity clear the bar-label column."""
    lo, hi = axis_range(groups)
    lower = [t for t in reversed(nice_ticks()) if t <= lo]
    for candidate in lower:
        axis = Axis(candidate, hi, left, PLOT_WIDTH)
        if all(label_start(bar, axis) >= left + 4 for g in groups for bar in g.bars):
            return axis
    return Axis(lower[-1], hi, left, PLOT_WIDTH)


def label_start(bar: Bar, axis: Axis) -> float:
    """Left end of a bar's value label: it only matters for bars below parity."""
    if bar.value >= 1:
        return math.inf
    reach = min(bar.value, bar.target if bar.target is not None else bar.value)
    return axis.x(reach) - 6 - text_width(value_label(bar)[0], 12)


# -- SVG ------------------------------------------------------------------------
def attributes(attrs: dict[str, str | float]) -> str:
    """Python keywords as SVG attributes (``font_weight`` -> ``font-weight``), quoted."""
    return "".join(f" {k.replace('_', '-')}={quoteattr(str(v))}" for k, v in attrs.items())


def text(x: float, y: float, content: str, size: float = 13, **attrs: str | float) -> str:
    """A text element, escaped, with a white outline so grid lines never cut through it."""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" stroke="#fff" stroke-width="3"'
        f' paint-order="stroke"{attributes(attrs)}>{escape(content)}</text>'
    )


def line(x1: float, y1: float, x2: float, y2: float, **attrs: str | float) -> str:
    """A line element; keyword attributes as for :func:`text`."""
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"{attributes(attrs)}/>'


def value_label(bar: Bar) -> tuple[str, bool]:
    """The value, and how it stands against its target (the bool: target missed)."""
    if bar.target is None:
        return bar.shown, False
    missed = bar.value < bar.target
    return f"{bar.shown}, target \u2265 {bar.target:g}x {'missed' if missed else 'met'}", missed


def draw_bar(bar: Bar, axis: Axis, y: float) -> tuple[list[str], float]:
    """Bar from parity to its value, its target mark and label; also the label's right end."""
    one, end = axis.x(1.0), axis.x(bar.value)
    colour = COLOURS.get(bar.series, "#888")
    parts = [
        f'<rect x="{min(one, end):.1f}" y="{y:.1f}" width="{max(abs(end - one), 1.5):.1f}"'
        f' height="{BAR}" fill="{colour}"/>'
    ]
    reach = [end]
    if bar.target is not None:
        tx = axis.x(bar.target)
        reach.append(tx)
        parts.append(line(tx, y - 3, tx, y + BAR + 3, stroke="#111", stroke_width=2.5))
    label, missed = value_label(bar)
    fill = MISSED if missed else "#222"
    baseline = y + BAR - 3
    if bar.value >= 1:
        x = max(reach) + 6
        parts.append(text(x, baseline, label, 12, fill=fill))
        return parts, x + text_width(label, 12)
    x = min(reach) - 6
    parts.append(text(x, baseline, label, 12, fill=fill, text_anchor="end"))
    return parts, max(reach)


def legend(groups: list[Group], x: float, y: float, right: float) -> tuple[list[str], float]:
    """Swatches of the series drawn, and the target mark if any; wraps at ``right``."""
    series = list(dict.fromkeys(bar.series for g in groups for bar in g.bars))
    items = [(SERIES_NAMES.get(s, s), COLOURS.get(s, "#888")) for s in series]
    has_target = any(bar.target is not None for g in groups for bar in g.bars)
    parts, cx = [], x
    for name, colour in [*items, *([("target (minimum ratio)", "")] if has_target else [])]:
        width = 18 + text_width(name, 12) + 18
        if cx + width > right and cx > x:
            cx, y = x, y + 20
        if colour:
            parts.append(
                f'<rect x="{cx:.1f}" y="{y - 10:.1f}" width="12" height="12" fill="{colour}"/>'
            )
        else:
            parts.append(line(cx + 6, y - 12, cx + 6, y + 4, stroke="#111", stroke_width=2.5))
        parts.append(text(cx + 18, y, name, 12, fill="#222"))
        cx += width
    return parts, y


TITLE = "Throughput of minisio / each other server (right of parity: minisio faster)"


def draw_groups(groups: list[Group], axis: Axis, y: float) -> tuple[list[str], float, float]:
    """Headings, bar labels and bars from ``y`` down; also the bottom and the rightmost
    value label, which size the document."""
    parts: list[str] = []
    right = axis.left + axis.width
    for group in groups:
        parts.append(text(24, y + 17, group.title, 14, font_weight="bold", fill="#111"))
        y += HEADING
        for bar in group.bars:
            label = text(axis.left - 10, y + BAR - 3, bar.label, 13, fill="#222", text_anchor="end")
            drawn, reach = draw_bar(bar, axis, y)
            parts += [label, *drawn]
            right = max(right, reach)
            y += ROW
        y += GROUP_GAP
    if not groups:
        note = "no ratios in this run (only minisio measured?)"
        parts.append(text(24, y + 20, note, 14, fill=MISSED))
        y += 40
    return parts, y, right


def draw_axis(axis: Axis, top: float, bottom: float) -> list[str]:
    """Grid lines and ticks, the x axis, the parity line and its label, the axis caption."""
    parts = []
    for tick in axis.ticks():
        tx = axis.x(tick)
        parts.append(line(tx, top, tx, bottom, stroke="#ddd", stroke_width=1))
        parts.append(text(tx, bottom + 18, f"{tick:g}x", 12, fill="#444", text_anchor="middle"))
    one, right = axis.x(1.0), axis.left + axis.width
    caption = "minisio / other (log scale); bars start at parity"
    return [
        *parts,
        line(axis.left, bottom, right, bottom, stroke="#444", stroke_width=1),
        line(one, top - 6, one, bottom, stroke="#111", stroke_width=1.5, stroke_dasharray="5 3"),
        text(one, top - 10, "parity", 12, fill="#111", text_anchor="middle", font_weight="bold"),
        text((axis.left + right) / 2, bottom + 40, caption, 12, fill="#555", text_anchor="middle"),
    ]


def render(results: dict[str, Any], groups: list[Group]) -> str:
    """The whole document: title, machine line, legend, the bar groups over the axis."""
    labels = [bar.label for g in groups for bar in g.bars]
    left = 24 + max([text_width(s, 13) for s in labels] or [100]) + 20  # slack: estimates
    axis = fit_axis(groups, left)
    header = [
        text(24, 32, TITLE, 18, font_weight="bold", fill="#111"),
        text(24, 54, subtitle(results), 12, fill="#555"),
    ]
    keys, y = legend(groups, 24, 82, max(left + PLOT_WIDTH, 900))
    top = y + 34
    bars, bottom, right = draw_groups(groups, axis, top)
    width = math.ceil(max(right + 24, text_width(TITLE, 18) + 48, 900))
    height = math.ceil(bottom + 56)
    return "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
            f' viewBox="0 0 {width} {height}" font-family={quoteattr(FONT)}>',
            f'<rect width="{width}" height="{height}" fill="#fff"/>',
            *(draw_axis(axis, top, bottom) if groups else []),
            *bars,
            *header,
            *keys,
            "</svg>",
            "",
        ]
    )


def write_svg(results: dict[str, Any], path: Path) -> None:
    """Write the ratio chart of one run (the dict run.py saves as JSON) to ``path``."""
    groups = scenario_groups(results.get("summary") or {}) + codec_group(results.get("codec") or [])
    path.write_text(render(results, groups), encoding="utf-8")


def main(argv: list[str]) -> int:
    """Redraw a saved run: ``chart.py [results.json] [chart.svg]``."""
    source = Path(argv[0]) if argv else Path(__file__).resolve().parent / "results/latest.json"
    target = Path(argv[1]) if len(argv) > 1 else source.with_suffix(".svg")
    write_svg(json.loads(source.read_text()), target)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
