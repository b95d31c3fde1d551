"""Readers, one per public source layout."""
