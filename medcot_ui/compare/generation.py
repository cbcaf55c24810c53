"""How both panes generate: one typed model whose fields' bounds, labels and help also draw the Compare sliders."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medcot_ui.compare.errors import CompareError
from medcot_ui.training.config import field_bounds


class GenerationSettings(BaseModel):
    """How both panes generate. Greedy ignores temperature / top-p / seed and reproduces exactly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_new_tokens: int = Field(1200, ge=1, le=8192, title="Max new tokens",
                                description="Reasoning models think at length: 1200 is the recipe's value.")
    # DeepSeek-R1's recommended sampling for its distills
    temperature: float = Field(0.6, ge=0.01, le=2.0, title="Temperature")
    top_p: float = Field(0.95, ge=0.01, le=1.0, title="Top-p")
    seed: int = Field(3407, ge=0, le=2**31 - 1, title="Seed", description="Same seed and settings: same sample.")
    greedy: bool = Field(False, title="Deterministic (greedy)",
                         description="Always the most likely token: reproducible; ignores temperature, top-p "
                                     "and seed.")

    @classmethod
    def bounds(cls, name: str) -> tuple[float, float]:
        """(lowest, highest) allowed value of a numeric setting, as its field declares them."""
        bounds = field_bounds(cls.model_fields[name])
        return bounds.minimum, bounds.maximum

    @classmethod
    def from_values(cls, max_new_tokens: Any, temperature: Any, top_p: Any, seed: Any, greedy: Any
                    ) -> "GenerationSettings":
        """From form values (numbers may arrive as floats or None); CompareError names the first bad setting."""
        try:
            values = {"max_new_tokens": int(max_new_tokens), "temperature": float(temperature),
                      "top_p": float(top_p), "seed": int(seed), "greedy": bool(greedy)}
        except (TypeError, ValueError):
            raise CompareError("settings: max new tokens, temperature, top-p and seed must all be numbers") from None
        try:
            return cls(**values)
        except ValidationError as exc:
            name = str(exc.errors()[0]["loc"][0])
            raise CompareError(f"{name}: {values[name]} is outside the allowed range "
                               f"(allowed: {field_bounds(cls.model_fields[name]).text})") from None

    def generate_kwargs(self) -> dict[str, Any]:
        """The sampling arguments of transformers' ``generate``."""
        if self.greedy:
            return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": None}
