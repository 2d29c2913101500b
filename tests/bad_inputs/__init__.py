"""The bad-input corpus: malformed files and arguments, built into a temporary folder."""
