"""The interactive inspector (Textual). Nothing here imports torch or the engine at import time:
the first frame paints before the model is loaded, inside a thread worker."""
