"""The cytokit command-line interface (thin: builds validated config, calls library functions)."""
