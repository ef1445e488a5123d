"""The app's screens: chat, setup, days, search, memory, help and dialogs."""
