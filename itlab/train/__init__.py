"""Training: arguments, DeepSpeed configuration, the resumable loop and its launcher."""
