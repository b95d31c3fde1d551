"""Deterministic instruments: readers per source layout, slicing, normalisation, measurements,
de-duplication, PHI scrubbing and the synthetic phantom generator. No model calls here."""
