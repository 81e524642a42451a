"""Datasets: every source format becomes the one `Example` type."""
