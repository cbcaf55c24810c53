"""MedCoT Studio: fine-tune a reasoning model on medical chain-of-thought data from a browser."""

__version__ = "0.1.0"
