"""Reading a built analysis and the questions pages, the CLI and reports ask of it: :class:`reader.Analysis`
(typed, memory-mapped arrays; original or a retrain revision), the exploration queries (map, neighbours,
duplicates), and class names for display."""
