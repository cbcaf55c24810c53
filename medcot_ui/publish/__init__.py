"""Export and publish a finished run: Hub upload, merge, GGUF, model card, the Publish tab's view."""
