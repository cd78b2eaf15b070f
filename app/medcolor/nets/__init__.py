"""Networks: colorizers, backbones, autoencoders, the architecture registry and transfer modes."""
