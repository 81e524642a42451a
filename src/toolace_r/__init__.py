"""toolace-r: teach language models to call tools and to refine their own tool calls."""

__version__ = "0.1.0"
