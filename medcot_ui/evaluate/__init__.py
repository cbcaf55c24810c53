"""Evaluation: held-out A/B answers with blind ratings, and multiple-choice accuracy (no Gradio here)."""
