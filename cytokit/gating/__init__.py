"""Automated gating: strategies (YAML), a registry of gate methods, and the engine that applies them."""
