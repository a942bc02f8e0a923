"""Features from images: the backbone registry and batched, resumable extraction (:mod:`embed`), its Dask
shard runner (:mod:`dask_embed`), and the quality rows read off the same decode (:mod:`quality_pass`)."""
