"""Analyses: functions from a kernel (or text) to plain data. No printing here."""
