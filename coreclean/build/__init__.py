"""The build: :class:`params.BuildParams` (every setting, typed, stored in meta), the stages chained by
:func:`pipeline.build_analysis` with their timings (:mod:`timing`), the one store that owns an analysis directory
and its work folder (:mod:`store`), cleaning rounds (:mod:`retrain`, :mod:`rounds`) and where a build runs
(:mod:`cluster`: Dask)."""
