"""Networks: colorizers, backbones, autoencoders, the builders of the architectures core.archs names, how
transfer modes split and freeze them, model summaries and Grad-CAM."""
