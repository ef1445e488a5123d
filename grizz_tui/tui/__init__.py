"""The Grizz terminal app (Textual): a face on `core.session.ChatSession`.

Importing this package loads nothing; `launch.run_app()` is the entry point.
"""
