"""Per-sample importance: the label-aware coreset sensitivity (:mod:`sensitivity`, the one place the bound's
formula lives), leverage, coreset sampling, "why flagged" (:mod:`explain`) and the backend registry (incl. the
optional DataHeroes adapter, imported lazily)."""
