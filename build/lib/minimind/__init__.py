"""minimind: a small, clean Llama-style language model, the reference for minimind lessons."""
from minimind.config import ConfigError, ModelConfig, preset
from minimind.model import MiniMindForCausalLM

__all__ = ["ConfigError", "ModelConfig", "MiniMindForCausalLM", "preset"]
