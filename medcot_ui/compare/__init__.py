"""Base vs tuned side by side: the compare engine and stored comparisons."""
