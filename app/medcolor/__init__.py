"""medcolor: learned colorization modules that transfer ImageNet networks to grayscale medical images."""
__version__ = "0.1.0"
