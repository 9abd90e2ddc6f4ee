"""Maintenance commands for the project's own files."""
