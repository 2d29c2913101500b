"""Modal screens: help, errors, open sample, attention-stage picker."""
