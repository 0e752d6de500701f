"""What every elastic supernet family shares: config serialisation and presets, the space's
identity, arch checks and capabilities, and the supernet's construction, initialisation and
activation. A family (``ofa_mbv3``, ``ofa_resnet50``, ``vit``) keeps only its own ideas: its
genes, its static config and its dynamic layers.
"""
