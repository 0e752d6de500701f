"""Once-for-all ResNet-50: space (pure Python), supernet, static subnets, published checkpoint."""
