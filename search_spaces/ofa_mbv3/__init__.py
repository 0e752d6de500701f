"""Once-for-all MobileNetV3 space (``ofa_mbv3``): elastic kernel, expand, depth, resolution."""

from search_spaces.ofa_mbv3.config import PRESETS, OFAMobileNetV3Config, get_config
from search_spaces.ofa_mbv3.space import OFAMobileNetV3Space

__all__ = ["PRESETS", "OFAMobileNetV3Config", "OFAMobileNetV3Space", "get_config"]
