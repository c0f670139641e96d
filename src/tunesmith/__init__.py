"""tunesmith: fine-tune open LLMs."""

__version__ = "0.1.0"
