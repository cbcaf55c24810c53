"""Runs tab logic: the table, charts, logs and artifacts of runs, read from the store (no Gradio)."""
