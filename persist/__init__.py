"""persist: the topology of neural networks (loss landscapes, forgetting, neural persistence)."""

__version__ = "0.1.0"
