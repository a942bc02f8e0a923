"""The classifier: the softmax solver (:mod:`solver`), the streamed passes over rows it is made of
(:mod:`row_passes`) and their Dask executor (:mod:`dask_passes`), per-sample statistics, predictions and
confusion (:mod:`model`)."""
