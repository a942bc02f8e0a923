"""Streamlit helpers for dashboard.py and pages/, split by job.

* :mod:`ui.state` — configuration, the shared build runner, cached analysis/log loaders, the source picker and the
  session's current analysis (including the one workaround for Streamlit's legacy pages/ mode).
* :mod:`ui.access` — optional password / OIDC access control for hosting.
* :mod:`ui.widgets` — the image grid, link-parameter notices.
* :mod:`ui.figures` — plotly figure builders (pure functions).
* :mod:`ui.selection` — chart-selection and URL-state logic (pure functions).
"""
