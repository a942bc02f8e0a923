"""Image quality: raw per-image statistics (:mod:`stats`), the issue registry and thresholds
(:mod:`thresholds`), and the per-analysis counts and flagged samples (:mod:`issues`)."""
