"""Untrusted files in, validated domain objects out."""
