"""Scoring channels: the method contract plugins implement, and the scores they build on."""
