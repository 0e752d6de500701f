"""The ``vit`` family: an elastic vision transformer (AutoFormer's dimensions) whose subnets are
timm ``VisionTransformer`` models."""
