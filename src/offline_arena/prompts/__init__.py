"""Prompt sources. A prompt is an id, the chat messages to answer, and free-form metadata."""

from .sources import Prompt, PromptFileError, load_prompts  # noqa: F401
