"""Recipes, Learners and runs: from a validated recipe to a finished run folder (train.py a leaf)."""
