"""Features from images: the backbone registry (:mod:`registry`: torchvision models by name, open_clip image
towers, pixels, precomputed, cnn), batched, resumable extraction (:mod:`embed`), its Dask shard runner
(:mod:`dask_embed`), the cross-fitted CNN trained on the data (:mod:`crossfit_cnn`), the text tower of CLIP-style
backbones (:mod:`text`: queries, zero-shot label check), and the quality rows read off the same decode
(:mod:`quality_pass`)."""
