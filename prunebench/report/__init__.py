"""Reporting: result schemas, the study's tidy tables and figures."""
