"""The pure-torch model: upstream ALIGNN and the research fork's multimodal variant.

Only this package (``dgl_backend``) knows about DGL.
"""
