"""Grizz: a warm, honest AI companion that lives in the terminal.

Importing this package must stay cheap: it never loads textual, httpx or rich.
"""

__version__ = "0.1.0"
