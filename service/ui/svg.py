"""Small line charts drawn server-side as inline SVG: no front-end build, no JavaScript, and
the page stays one request. Every label is escaped here; the result is marked safe for Jinja."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

# Colour-blind-safe (Okabe-Ito), as presentation attributes: the console's CSP forbids inline styles.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
W, H = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 16, 36


def line_chart(title: str, x: Sequence[str], series: dict[str, Sequence[float | None]],
               label: Callable[[float], str] = lambda v: f"{v:g}") -> Markup:
    """One polyline per series over categorical ``x`` (days, versions); a None value breaks the
    line. With no finite value at all, a short note instead of empty axes."""
    values = [v for s in series.values() for v in s if v is not None]
    t = escape(title)
    if not x or not values:
        return Markup(f'<p class="muted">{t}: no data yet</p>')
    top = max(values) or 1.0
    top = top * 1.1
    span_x = max(len(x) - 1, 1)

    def px(i: int) -> float:
        return LEFT + (W - LEFT - RIGHT) * (i / span_x if len(x) > 1 else 0.5)

    def py(v: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (1 - v / top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
             f'role="img" aria-label="{t}"><title>{t}</title>',
             f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="#888"/>',
             f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="#888"/>']
    for frac in (0.0, 0.5, 1.0):
        tick = top / 1.1 * frac
        parts.append(f'<text x="{LEFT - 6}" y="{py(tick) + 4:.1f}" font-size="11" text-anchor="end">'
                     f'{escape(label(tick))}</text>')
    step = max(1, len(x) // 6)
    for i in range(0, len(x), step):
        parts.append(f'<text x="{px(i):.1f}" y="{H - BOTTOM + 16}" font-size="11" text-anchor="middle">'
                     f'{escape(x[i])}</text>')
    for n, (name, ys) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        run: list[str] = []
        segments: list[list[str]] = [run]
        for i, v in enumerate(ys):
            if v is None:
                run = []
                segments.append(run)
                continue
            run.append(f"{px(i):.1f},{py(v):.1f}")
            parts.append(f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="2.5" fill="{colour}">'
                         f'<title>{escape(name)} {escape(x[i])}: {escape(label(v))}</title></circle>')
        parts += [f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(seg)}"/>'
                  for seg in segments if len(seg) > 1]
        ly = TOP + 14 + 18 * n
        parts.append(f'<rect x="{W - RIGHT + 12}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{W - RIGHT + 28}" y="{ly}" font-size="12">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
