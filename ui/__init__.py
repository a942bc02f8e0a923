"""Streamlit helpers for dashboard.py and pages/, split by job.

* :mod:`ui.state` — configuration, cached analysis/log loaders, the source and round pickers and the session's
  current analysis (including the one workaround for Streamlit's legacy pages/ mode).
* :mod:`ui.jobs` — the background runner every session shares (builds, Apply & retrain, the dataset audit) and its
  progress bar; :mod:`ui.retraining` — Apply & retrain as a job, and its bounds on read-only hosting.
* :mod:`ui.access` — optional password / OIDC access control for hosting.
* :mod:`ui.widgets` — the image grid, a page number input, link-parameter notices.
* :mod:`ui.figures` — plotly figure builders (pure functions).
* :mod:`ui.selection` — chart-selection and URL-state logic (pure functions).
* :mod:`ui.map_selection` — the Map page's selection state machine (pure functions over the session state).
* :mod:`ui.map_figures`, :mod:`ui.map_colours`, :mod:`ui.map_image` — the map's figure (and its cached builder), how
  each colour field paints it, and the points painted as one image.
"""
