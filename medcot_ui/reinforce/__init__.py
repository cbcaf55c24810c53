"""Reinforcement with a verifiable reward (GRPO): multiple-choice questions, rewards, the job kind."""
