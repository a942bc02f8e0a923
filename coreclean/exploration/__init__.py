"""Exploration signals over the features: neighbours (:mod:`neighbors`), duplicates and leakage
(:mod:`duplicates`), outliers (:mod:`outliers`, :mod:`orientation`), the 2-D map (:mod:`projection`), and the
build stage that computes them all (:mod:`stage`)."""
