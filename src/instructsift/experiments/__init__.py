"""What runs pipelines or trainings many times and judges them: the experiment runner (a cached trial per
subset), InstructMining's design, mining and size search, Cherry LLM's pre-experience run, the win rate,
intervals over held-out examples and the length check. `compare.py` drives them for `instructsift compare`
(its recipe in `compare_spec.py`, the arms' picks in `arms.py`, `stats.py`, `tables.py`, `plot.py`)."""
