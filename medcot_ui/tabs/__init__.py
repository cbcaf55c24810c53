"""One module per Gradio tab: layout and wiring only, no logic."""
