"""The audit report as one self-contained HTML file: inline CSS, charts as inline SVG, thumbnails as ``data:``
URIs; no script, no font, no request of any kind, so it opens offline and can be mailed or attached to a CI run."""
from __future__ import annotations

import base64
import io
from html import escape

import numpy as np

from ..data.decode import tile
from ..data.images import ImageUnavailable, image_for
from .audit import scope_line

THUMB_PX = 72
MAX_MATRIX_CLASSES = 30  # larger matrices show the classes with the most off-diagonal mass
SECTIONS = ("health", "noise-matrix", "confusion", "overlap", "importance", "flagged", "duplicates", "quality",
            "rounds")
CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1d2330;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #dde;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #dde;padding:2px 8px;text-align:right}
th{background:#f3f4f8}td.l,th.l{text-align:left}.big{font-size:2.2em;font-weight:600}
.cards{display:flex;gap:1.5em;flex-wrap:wrap}.card{background:#f6f7fb;border-radius:8px;padding:.6em 1em}
.tiles{display:flex;flex-wrap:wrap;gap:8px}.tile{width:%dpx;font-size:11px;text-align:center}
.tile img{width:%dpx;height:%dpx;image-rendering:pixelated;display:block}.muted{color:#667}""" % (
    THUMB_PX + 40, THUMB_PX + 40, THUMB_PX + 40)


def thumbnail(analysis, index: int) -> str | None:
    """A small PNG of training sample ``index`` as a ``data:`` URI (None when its image cannot be read)."""
    try:
        picture = tile(image_for(analysis, int(index), "train"), THUMB_PX)
    except ImageUnavailable:
        return None
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=False, compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _colour(value: float) -> str:
    v = float(np.clip(value, 0.0, 1.0)) ** 0.5  # square root: small off-diagonal rates stay visible
    r, g, b = (int(255 - v * (255 - c)) for c in (33, 90, 170))
    return f"rgb({r},{g},{b})"


def heatmap_svg(matrix, names: list[str], *, title: str, normalize_rows: bool = True) -> str:
    """A (K, K) matrix as an SVG heatmap (rows and columns named), values printed in cells when K is small."""
    m = np.asarray(matrix, dtype=np.float64)
    shown = np.arange(len(m))
    if len(m) > MAX_MATRIX_CLASSES:
        off = m.sum(axis=1) + m.sum(axis=0) - 2 * np.diag(m)
        shown = np.sort(np.argsort(-off, kind="stable")[:MAX_MATRIX_CLASSES])
    rates = m / np.clip(m.sum(axis=1, keepdims=True), 1e-12, None) if normalize_rows else m
    rates = rates[np.ix_(shown, shown)]
    cell, pad = 26, 110
    size = pad + cell * len(shown)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size + 10}" role="img" '
             f'aria-label="{escape(title)}" font-size="10">']
    for i, row in enumerate(shown):
        name = escape(names[row][:16])
        parts.append(f'<text x="{pad - 4}" y="{pad + cell * i + 17}" text-anchor="end">{name}</text>')
        parts.append(f'<text transform="translate({pad + cell * i + 17},{pad - 4}) rotate(-60)">{name}</text>')
        for j in range(len(shown)):
            value = rates[i, j]
            parts.append(f'<rect x="{pad + cell * j}" y="{pad + cell * i}" width="{cell}" height="{cell}" '
                         f'fill="{_colour(value)}"><title>{escape(names[row])} → {escape(names[shown[j]])}: '
                         f'{value:.3f}</title></rect>')
            if len(shown) <= 12 and value >= 0.005:
                colour = "#fff" if value > 0.35 else "#123"
                parts.append(f'<text x="{pad + cell * j + 13}" y="{pad + cell * i + 17}" text-anchor="middle" '
                             f'fill="{colour}" font-size="8">{value:.2f}</text>')
    parts.append("</svg>")
    note = "" if len(shown) == len(m) else \
        f'<p class="muted">The {len(shown)} classes with the most off-diagonal mass of {len(m)}.</p>'
    return "".join(parts) + note


def histogram_svg(counts: list[int], label: str, *, width: int = 180, height: int = 60) -> str:
    counts = np.asarray(counts, dtype=np.float64)
    top = max(counts.max(), 1.0)
    bar = width / len(counts)
    rects = "".join(f'<rect x="{i * bar:.1f}" y="{height - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" '
                    f'fill="#3a6fb0"/>' for i, h in enumerate(counts / top * (height - 12)))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 14}" font-size="10" '
            f'role="img" aria-label="importance of {escape(label)}"><text x="0" y="10">{escape(label[:28])}</text>'
            f'{rects}<text x="0" y="{height + 12}">0</text><text x="{width}" y="{height + 12}" '
            f'text-anchor="end">1</text></svg>')


def _table(rows: list[dict], columns: list[str], *, left: tuple[str, ...] = ()) -> str:
    def cell(value):
        if isinstance(value, float):
            return f"{value:.4g}"
        return escape("" if value is None else str(value))
    head = "".join(f'<th class="{"l" if c in left else ""}">{escape(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="{"l" if c in left else ""}">{cell(r.get(c))}</td>'
                                    for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def render_html(analysis, data: dict) -> str:
    """The report (see module docstring) of ``data`` (:func:`coreclean.audit.report_data.report_data`)."""
    names, audit, ds = data["dataset"]["classes"], data["audit"], data["dataset"]
    low, high = audit["noise_interval"]
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>coreclean report — "
           f"{escape(ds['name'])}</title><style>{CSS}</style></head><body>",
           f"<h1>Dataset audit — {escape(ds['name'])}</h1><p class='muted'>{ds['n_train']:,} training / "
           f"{ds['n_test']:,} test samples, {len(names)} classes, backbone {escape(str(ds['backbone']))}, "
           f"test accuracy {_pct(ds['test_accuracy'])}, cleaning round {ds['round']}.</p>"]
    # --- health summary
    balance = audit["balance"]
    out.append("<section id='health'><h2>Health summary</h2><div class='cards'>"
               f"<div class='card'>health<div class='big'>{audit['health']:.3f}</div>share of labels estimated "
               "right</div>"
               f"<div class='card'>estimated wrong labels<div class='big'>{_pct(audit['noise_rate'])}</div>"
               f"{audit['label_issues']:,} samples, 95% interval {_pct(low)} – {_pct(high)}</div>"
               f"<div class='card'>class imbalance<div class='big'>{balance['imbalance']:.1f}×</div>"
               f"largest / smallest class</div></div>")
    rows = [{"class": names[c], "samples": audit["counts"][c], "health": audit["class_health"][c],
             "wrong labels": _pct(audit["class_noise_rates"][c]),
             "95% interval": " – ".join(_pct(v) for v in audit["class_noise_intervals"][c]),
             "note": "too few samples" if c in balance["too_few"] else "rare" if c in balance["rare"] else ""}
            for c in range(len(names))]
    rows.sort(key=lambda r: (r["health"] if r["health"] is not None else 2.0))
    out.append(_table(rows, ["class", "samples", "health", "wrong labels", "95% interval", "note"],
                      left=("class", "note")))
    out.append("<p class='muted'>Health of a class = 1 − its estimated share of wrong labels; overall = the "
               "sample-weighted mean (coreclean/audit/health.py). Estimated from cross-fitted, out-of-sample "
               f"probabilities ({audit['settings']['folds']} folds) by counting labels on each class's anchors "
               f"(coreclean/audit/noise.py); intervals by bootstrap. {escape(scope_line(audit) or '')}</p>"
               "</section>")
    out.append("<section id='noise-matrix'><h2>Estimated noise matrix</h2><p>Row: true class; column: given label; "
               "each row sums to 1 (P(given | true)).</p>"
               + heatmap_svg(audit["noise_matrix"], names, title="noise matrix", normalize_rows=False)
               + "</section>")
    out.append("<section id='confusion'><h2>Confusion (test set)</h2><p>Row: label; column: prediction; "
               "row-normalized.</p>" + heatmap_svg(data["confusion"], names, title="confusion") + "</section>")
    overlap = [{"classes": f"{names[p['a']]} / {names[p['b']]}", "overlap": _pct(p["overlap"]),
                "labelled first, truly second": _pct(p["a_to_b"]), "the reverse": _pct(p["b_to_a"]),
                "samples": p["samples"], "merge?": "merge?" if p["merge"] else ""} for p in audit["overlap"]]
    out.append("<section id='overlap'><h2>Overlapping classes</h2>"
               + (_table(overlap, list(overlap[0]), left=("classes", "merge?")) if overlap else
                  "<p>No class pair shares estimated joint mass.</p>")
               + "<p class='muted'>“merge?”: the pair holds at least a quarter of the smaller class’s mass, in "
                 "both directions: the data cannot tell the two apart.</p></section>")
    hist = data["importance_histograms"]["counts"]
    out.append("<section id='importance'><h2>Importance per class</h2><p>Importance scaled to (0, 1] within each "
               "class; the right tail holds the samples to review first.</p><div class='cards'>"
               + "".join(histogram_svg(h, names[c]) for c, h in enumerate(hist[:60])) + "</div></section>")
    out.append("<section id='flagged'><h2>Top flagged samples</h2>")
    for kind, samples in data["flagged"].items():
        out.append(f"<h3>{escape(kind)}</h3><div class='tiles'>")
        for s in samples:
            uri = thumbnail(analysis, s["index"])
            image = f"<img alt='sample {s['index']}' src='{uri}'>" if uri else "<div class='muted'>no image</div>"
            suggestion = "" if s["suggested"] < 0 else \
                f"<br>→ {escape(names[s['suggested']])} ({_pct(s['confidence'])})"
            out.append(f"<div class='tile'>{image}#{s['index']} {escape(names[s['label']])}{suggestion}</div>")
        out.append("</div>")
    out.append("<p class='muted'>→ suggested label (probability it is the true one, calibrated on out-of-fold "
               "probabilities).</p></section>")
    dup = data["duplicates"]
    out.append("<section id='duplicates'><h2>Duplicates and leakage</h2>" + (
        _table([dup], ["samples", "groups", "exact_groups", "leakage"]) +
        "<p class='muted'>samples: training samples that repeat an earlier one; leakage: test samples with a near "
        "or exact copy in train.</p>" if dup else "<p>Built without the exploration stage.</p>") + "</section>")
    out.append("<section id='quality'><h2>Image quality</h2>" + (
        _table(data["quality"], ["issue", "threshold", "flagged", "share"], left=("issue",)) if data["quality"]
        else "<p>No image-quality scores in this analysis.</p>") + "</section>")
    out.append("<section id='rounds'><h2>Cleaning rounds</h2>" + _table(
        data["rounds"], ["round", "decisions applied", "relabelled", "removed", "test accuracy",
                         "errors per 100 reviews"], left=("round",)) + "</section>")
    out.append("<p class='muted'>Written by coreclean (python -m coreclean report).</p></body></html>\n")
    return "".join(out)
