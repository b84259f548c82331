"""Selecting channels: selection rules, policies (fixed-rate, adaptive AAP, matched) and references."""
