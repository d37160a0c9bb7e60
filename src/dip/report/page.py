"""Build the report folder: index.html (inline CSS, JS and SVG; no network) plus PNG files.

Opens from disk. The process viewer steps through snapshots with a slider, the Left/Right
arrow keys or a swipe; the comparison shows every method side by side with a synced zoom.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..callbacks import Frame
from ..io import Picture, atomic_path, write_image


@dataclass
class Panel:
    """One image of a comparison, with its scores against the reference when one exists."""

    label: str
    image: np.ndarray | None = None  # float (H, W, C); or give `path` to an existing file in the report
    path: str | None = None
    psnr: float | None = None
    ssim: float | None = None
    note: str = ""


@dataclass
class Section:
    title: str
    panels: list[Panel]


@dataclass
class Report:
    title: str
    settings: dict[str, str] = field(default_factory=dict)
    frames: list[Frame] = field(default_factory=list)  # snapshots, their paths inside the report folder
    total_steps: int | None = None
    chosen_step: int | None = None  # the step the result comes from (early stop / best / last)
    stop_note: str = ""
    losses: list[tuple[int, float]] = field(default_factory=list)
    psnrs: list[tuple[int, float]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    table: list[list[str]] = field(default_factory=list)  # first row = header
    metric: str = "PSNR"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def curve_svg(
    points: list[tuple[int, float]],
    label: str,
    marker: int | None,
    log: bool = False,
    width: int = 460,
    height: int = 200,
) -> str:
    """A line chart as inline SVG, with a dashed vertical line at step `marker`."""
    points = [(s, v) for s, v in points if math.isfinite(v) and (v > 0 or not log)]
    if len(points) < 2:
        return ""
    xs = [s for s, _ in points]
    ys = [math.log10(v) if log else v for _, v in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    y1 = y1 if y1 > y0 else y0 + 1
    pad = 36

    def sx(s: float) -> float:
        return pad + (s - x0) / max(x1 - x0, 1) * (width - pad - 8)

    top_margin = 28

    def sy(v: float) -> float:
        return height - pad - (v - y0) / (y1 - y0) * (height - pad - top_margin)

    path = " ".join(f"{sx(s):.1f},{sy(v):.1f}" for s, v in zip(xs, ys))
    top = f"{10**y1:.3g}" if log else f"{y1:.2f}"
    bottom = f"{10**y0:.3g}" if log else f"{y0:.2f}"
    mark = ""
    if marker is not None and x0 <= marker <= x1:
        anchor = "end" if sx(marker) > width / 2 else "start"
        shift = -4 if anchor == "end" else 4
        mark = (
            f'<line class="mark" x1="{sx(marker):.1f}" x2="{sx(marker):.1f}" y1="{top_margin}" '
            f'y2="{height - pad}"/><text x="{sx(marker) + shift:.1f}" y="{top_margin + 10}" '
            f'text-anchor="{anchor}">result: step {marker}</text>'
        )
    return (
        f'<svg class="curve" role="img" aria-label="{html.escape(label)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><text x="4" y="14" class="title">{html.escape(label)}'
        f"{' (log)' if log else ''}</text>"
        f'<line class="axis" x1="{pad}" y1="{height - pad}" x2="{width - 8}" y2="{height - pad}"/>'
        f'<line class="axis" x1="{pad}" y1="{top_margin}" x2="{pad}" y2="{height - pad}"/>'
        f'<text x="2" y="{sy(y1) + 12:.1f}">{top}</text><text x="2" y="{sy(y0):.1f}">{bottom}</text>'
        f'<text x="{pad}" y="{height - pad + 16}">{x0}</text>'
        f'<text x="{width - 40}" y="{height - pad + 16}">{x1}</text>'
        f'<polyline points="{path}"/>{mark}</svg>'
    )


def write_report(directory: str | os.PathLike, report: Report) -> Path:
    """Write `report` into `directory` (created if needed); returns the path of index.html."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    for s, section in enumerate(report.sections):
        for p, panel in enumerate(section.panels):
            name = f"compare_{s:02d}_{p:02d}.png"
            if panel.image is not None:
                write_image(folder / name, Picture(np.ascontiguousarray(panel.image, dtype=np.float32)))
                panel.path = name
            elif panel.path and not _inside(Path(panel.path), folder):
                shutil.copyfile(panel.path, folder / name)  # the report must open on its own
                panel.path = name
    if report.frames:
        from .animation import save_animation

        save_animation(report.frames, folder / ANIMATION, report.total_steps)
    page = folder / "index.html"
    with atomic_path(page) as temp:
        temp.write_text(render(report, folder), encoding="utf-8")
    return page


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _relative(path: Path | str | None, folder: Path) -> str:
    if path is None:
        return ""
    path = Path(path)
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return os.path.relpath(path.resolve(), folder.resolve())


def render(report: Report, folder: Path) -> str:
    esc = html.escape
    frames = [
        {"src": _relative(f.path, folder), "step": f.step, "loss": f.loss, "psnr": f.logs.get("psnr")}
        for f in report.frames
        if f.path is not None
    ]
    parts = [f"<h1>{esc(report.title)}</h1>"]
    if frames:
        parts.append(f"""
<section id="process"><h2>Restoration process</h2>
<div id="viewer" tabindex="0"><img id="frame" alt="restoration at a given step" src="{esc(frames[0]["src"])}"></div>
<div class="controls"><button id="prev" aria-label="previous step">&larr;</button>
<input id="slider" type="range" min="0" max="{len(frames) - 1}" value="0" aria-label="step">
<button id="next" aria-label="next step">&rarr;</button>
<button id="jump">go to result</button></div>
<p id="label" aria-live="polite"></p>
<p class="hint">Left/Right arrow keys, the slider or a swipe move through the {len(frames)} snapshots.
{esc(report.stop_note)} <a id="animation" href="{ANIMATION}" download>The process as an animation (WebP)</a></p>
</section>""")
    curves = curve_svg(report.losses, "loss", report.chosen_step, log=True) + curve_svg(
        report.psnrs, "PSNR (dB) against the reference", report.chosen_step
    )
    if curves:
        parts.append(f'<section id="curves"><h2>Curves</h2>{curves}</section>')
    if report.table:
        head, *rows = report.table
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
        parts.append(
            f'<section id="scores"><h2>Scores ({esc(report.metric)}, dB)</h2><table><thead><tr>'
            f"{''.join(f'<th>{esc(h)}</th>' for h in head)}</tr></thead><tbody>{body}</tbody></table></section>"
        )
    for section in report.sections:
        figures = []
        for panel in section.panels:
            scores = ""
            if panel.psnr is not None:
                scores = f'<span class="score">{esc(report.metric)} {_fmt(panel.psnr)} dB'
                scores += f" · SSIM {_fmt(panel.ssim, 4)}</span>" if panel.ssim is not None else "</span>"
            picture = (
                f'<img src="{esc(panel.path)}" alt="{esc(panel.label)}">'
                if panel.path
                else '<p class="missing">no image</p>'
            )
            figures.append(
                f'<figure class="panel"><div class="zoombox">{picture}</div>'
                f"<figcaption><b>{esc(panel.label)}</b> {scores}"
                f"{'<br><small>' + esc(panel.note) + '</small>' if panel.note else ''}</figcaption></figure>"
            )
        parts.append(
            f'<section class="comparison"><h2>{esc(section.title)}</h2>'
            f'<div class="panels">{"".join(figures)}</div></section>'
        )
    if report.sections:
        parts.insert(
            1 if not frames else 2,
            '<div id="zoombar">zoom <input id="zoom" type="range" min="1" max="8" '
            'step="0.5" value="1" aria-label="zoom"> <span id="zoomvalue">1x</span> '
            "<small>(move the mouse over an image: every image follows)</small></div>",
        )
    if report.settings:
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in report.settings.items())
        parts.append(f'<section id="settings"><h2>Settings</h2><table>{rows}</table></section>')
    data = json.dumps({"frames": frames, "chosen": report.chosen_step, "total": report.total_steps})
    values = {
        "title": esc(report.title),
        "body": "\n".join(parts),
        "data": data.replace("</", "<\\/"),
        "viewer": VIEWER_JS,
    }
    return fill(TEMPLATE, values)


def fill(template: str, values: dict[str, str]) -> str:
    """Put each value in place of its {{name}}, in one pass (a value's own text is never read as a slot)."""
    return re.sub(r"\{\{(\w+)\}\}", lambda match: values[match.group(1)], template)


ANIMATION = "process.webp"  # the process as one animated picture, beside index.html
VIEWER_JS = (Path(__file__).parent / "viewer.js").read_text(encoding="utf-8")  # shared with `dip serve`

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}}</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
#viewer{display:inline-block;outline:none;border:1px solid #ccc;touch-action:pan-y}
#viewer img{display:block;max-width:min(100%,640px);min-width:256px;image-rendering:pixelated}
.controls{display:flex;gap:.5em;align-items:center;margin:.5em 0;max-width:640px}
#slider{flex:1}#label{font-family:ui-monospace,monospace}.best{color:#b00;font-weight:bold}
.hint{color:#666;font-size:.9em}
svg.curve{margin-right:1em;border:1px solid #eee}svg.curve polyline{fill:none;stroke:#1f62c9;stroke-width:1.5}
svg.curve .axis{stroke:#999}svg.curve .mark{stroke:#b00;stroke-dasharray:4 3}
svg.curve text{font-size:11px;fill:#444}svg.curve .title{font-weight:bold}
.panels{display:flex;flex-wrap:wrap;gap:12px}.panel{margin:0;width:260px}
.zoombox{width:256px;height:256px;overflow:hidden;border:1px solid #ccc;background:#eee}
.zoombox img{width:100%;height:100%;object-fit:contain;transform-origin:50% 50%;image-rendering:pixelated}
figcaption{font-size:.9em}.missing{padding:1em;color:#888}.score{font-family:ui-monospace,monospace;display:block}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
#zoombar{position:sticky;top:0;background:#fff;padding:.4em 0;z-index:1}
</style></head><body>
{{body}}
<script>
{{viewer}}
const DATA = {{data}};
if (DATA.frames.length) DipViewer.process({frames: DATA.frames, chosen: DATA.chosen, total: DATA.total});
DipViewer.zoom();
</script></body></html>
"""
