"""The ML engine: features, labels, validation, models and their serving (issue 11)."""
