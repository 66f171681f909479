"""offline-arena: post-train LLMs through an offline arena.

Importing the package is cheap on purpose: torch, transformers and friends are imported inside the
functions that need them, so `import offline_arena` and `arena --help` stay fast.
"""

__version__ = "0.1.0"
