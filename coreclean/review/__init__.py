"""Review: the decision log that owns every read-then-write (:mod:`log`), its backups (:mod:`backup`), review
queues (:mod:`queue`), progress and errors-left estimates (:mod:`stats`), and what leaves coreclean
(:mod:`export`)."""
