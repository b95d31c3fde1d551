"""Human review of annotation runs: describer agreement, the review queue, the gold set."""
