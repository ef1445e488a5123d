"""The built-in offline model (llama.cpp, the `local` extra): finding the
model file, loading it, its prompt format and prefix cache, the provider.
"""
