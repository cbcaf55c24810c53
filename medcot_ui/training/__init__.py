"""What a run is and how it trains: the typed config, presets, form spec, estimate, prompts, model loading."""
