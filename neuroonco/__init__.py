"""NeuroOnco: brain-tumour MRI collections into multimodal instruction data and benchmarks."""

__version__ = "0.1.0"
