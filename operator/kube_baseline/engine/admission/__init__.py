"""Admission policies generated from a SecurityBaseline: pure renderers (see validating)."""
