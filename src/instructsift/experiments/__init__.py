"""What runs pipelines many times and judges them: intervals over held-out examples (more to move here:
the runner, compare, the win rate)."""
