"""Receivers for Django auth signals (filled below)."""
