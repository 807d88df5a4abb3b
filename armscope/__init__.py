"""armscope: train multimodal models and measure how much each modality contributes."""

__version__ = "0.1.0"
