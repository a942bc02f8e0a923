"""The dashboard's figures as plain plotly figures, for notebooks and scripts: ``analysis.figures.confusion()``.

:class:`AnalysisFigures` is what :attr:`coreclean.Analysis.figures` returns. The compute layer never imports this
package: it looks up the ``coreclean.figures`` entry point, which pyproject.toml points here. Every figure is drawn
by the builders the pages use (:mod:`ui.figures`, :mod:`ui.map_figures`) from the same queries, so a notebook shows
what the dashboard shows, without a Streamlit server.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from coreclean import Analysis
from coreclean.analysis import explore_queries as explore
from coreclean.analysis.labels import unique_labels, visible_classes
from coreclean.data.decode import tile
from coreclean.data.images import ImageUnavailable, image_for
from . import figures


class AnalysisFigures:
    """The figures of one :class:`~coreclean.Analysis`; each method returns a new ``plotly.graph_objects.Figure``
    (show it by leaving it last in a cell, or ``fig.show()``; ``fig.write_html(path)`` to share it)."""

    def __init__(self, analysis: Analysis):
        self.analysis = analysis
        self.names = unique_labels(analysis.classes)  # the names the dashboard shows (duplicates made distinct)

    def _class_ids(self, classes: Sequence[int | str]) -> list[int]:
        ids = []
        for c in classes:
            if isinstance(c, str):
                if c not in self.names:
                    raise ValueError(f"class {c!r}: not a class of this analysis; one of {self.names[:10]} ...")
                ids.append(self.names.index(c))
            else:
                ids.append(self.analysis.check_label(int(c), "class"))
        return ids

    def confusion(self, *, top_n: int = 30, search: str = "") -> go.Figure:
        """The Confusion page's matrix: rows true, columns predicted, colour the rate within the true class; with
        more than ``top_n`` classes only those in the worst confusions (or those whose name contains ``search``)."""
        visible = visible_classes(self.analysis.confusion, self.names, top_n=top_n, search=search)
        if len(visible) == 0:
            raise ValueError(f"no class name contains {search!r}.")
        return figures.confusion_figure(self.analysis.confusion, self.names, visible)

    def importance_histogram(self, classes: Sequence[int | str] | None = None, *, facet: bool = False) -> go.Figure:
        """The Importance page's histograms of per-class normalized importance for ``classes`` (names or ids;
        default, as on the page: the true classes of the three worst confusions), overlaid or ``facet``-ed."""
        if classes is None:
            classes = list(dict.fromkeys(self.names[p.true] for p in self.analysis.pairs()))[:3] or self.names[:3]
        ids = self._class_ids(classes)
        values = {self.names[c]: self.analysis.class_importance[self.analysis.ranked(c)] for c in ids}
        return figures.importance_histogram(values, facet=facet)

    def image_grid(self, indices: Sequence[int], *, split: str = "train", columns: int = 6, px: int = 96) -> go.Figure:
        """Samples ``indices`` of ``split`` as a grid of tiles (the dashboard's tiles: same decoding and fitting),
        each titled ``#index label -> predicted``; an unreadable image shows its reason instead."""
        from plotly.subplots import make_subplots

        indices = [int(i) for i in indices]
        if not indices:
            raise ValueError("image_grid: no indices given (e.g. analysis.ranked(0)[:12]).")
        columns = max(1, min(int(columns), len(indices)))
        rows = -(-len(indices) // columns)
        labels = self.analysis.y_train if split == "train" else self.analysis.y_test
        predicted = self.analysis.pred_train if split == "train" else self.analysis.pred_test
        titles, pictures = [], []
        for index in indices:
            try:
                pictures.append(np.asarray(tile(image_for(self.analysis, index, split), px)))
                true, guess = self.names[int(labels[index])], self.names[int(predicted[index])]
                titles.append(f"#{index} {true}" + (f" → {guess}" if guess != true else ""))
            except ImageUnavailable as err:
                pictures.append(np.full((px, px, 3), 240, np.uint8))
                titles.append(f"#{index}: {err}")
        fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.01,
                            vertical_spacing=0.3 / rows)
        for k, picture in enumerate(pictures):
            fig.add_trace(go.Image(z=picture, hoverinfo="skip"), row=k // columns + 1, col=k % columns + 1)
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.update_annotations(font_size=11)
        fig.update_layout(height=rows * (px + 50) + 20, width=columns * (px + 30) + 20,
                          margin=dict(l=5, r=5, t=30, b=5))
        return fig

    def map(self, colour: str = "label", *, draw: str | None = None) -> go.Figure:
        """The Map page's 2-D map coloured by ``colour`` (label, prediction, importance, outlier, duplicate or
        decision: the review log's current decisions), as points or one image (``draw``; default as on the page)."""
        from .map_colours import map_colour
        from .map_figures import default_draw, map_figure

        rows, xy = explore.map_points(self.analysis)
        decisions = None
        if colour == "decision":
            from coreclean.review.log import ReviewLog

            log = ReviewLog(self.analysis.root_analysis, len(self.analysis.y_train), self.analysis.n_classes)
            decisions = {i: d.decision for i, d in log.current().items()}
        paint = map_colour(self.analysis, colour, rows, decisions)
        return map_figure(xy, rows, paint.values, paint.categories, paint.title,
                          draw=draw or default_draw(len(rows)))
