"""Line charts as inline SVG markup (numbers and fixed class names only), for CED and loss curves."""

from collections.abc import Sequence

from markupsafe import Markup, escape

W, H = 360, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 36


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    step = (hi - lo) / n if hi > lo else 1.0
    return [lo + i * step for i in range(n + 1)]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def line_chart(
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    *,
    x_label: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
    title: str = "",
) -> Markup:
    """An SVG chart of one or more (name, xs, ys) series, with axes, ticks and a legend."""
    series = [(n, list(xs), list(ys)) for n, xs, ys in series if len(xs)]
    if not series:
        return Markup("")
    xs_all = [x for _, xs, _ in series for x in xs]
    ys_all = [y for _, _, ys in series for y in ys if y == y]
    x0, x1 = min(xs_all), max(xs_all)
    y0, y1 = y_range or (min(0.0, min(ys_all)), max(ys_all) or 1.0)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT)

    def py(y: float) -> float:
        return H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM)

    out = [
        f'<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'aria-label="{escape(title or y_label)}">'
    ]
    out.append(f'<line class="axis" x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}"/>')
    out.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}"/>')
    x_ticks = _ticks(x0, x1)
    if all(float(x).is_integer() for x in xs_all):
        x_ticks = sorted({round(t) for t in x_ticks})  # epochs: whole numbers
    for t in x_ticks:
        out.append(
            f'<text class="tick" x="{px(t):.1f}" y="{H - BOTTOM + 14}" text-anchor="middle">{_fmt(t)}</text>'
        )
    for t in _ticks(y0, y1):
        out.append(f'<line class="grid" x1="{LEFT}" y1="{py(t):.1f}" x2="{W - RIGHT}" y2="{py(t):.1f}"/>')
        out.append(
            f'<text class="tick" x="{LEFT - 4}" y="{py(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>'
        )
    out.append(
        f'<text class="label" x="{(LEFT + W - RIGHT) / 2}" y="{H - 4}" text-anchor="middle">{escape(x_label)}</text>'
    )
    out.append(
        f'<text class="label" x="12" y="{(TOP + H - BOTTOM) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(TOP + H - BOTTOM) / 2})">{escape(y_label)}</text>'
    )
    for i, (name, xs, ys) in enumerate(series):
        pts = " ".join(
            f"{px(x):.1f},{py(min(max(y, y0), y1)):.1f}" for x, y in zip(xs, ys, strict=True) if y == y
        )
        out.append(f'<polyline class="series s{i % 4}" points="{pts}"/>')
        out.append(
            f'<text class="legend s{i % 4}" x="{W - RIGHT - 4}" y="{TOP + 12 + 14 * i}" text-anchor="end">{escape(name)}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))
