"""Widgets of the chat screen: messages, composer, status bar, notices."""
