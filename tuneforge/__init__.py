"""tuneforge: self-hosted model customization with Bedrock's API."""

__version__ = "0.1.0"

__all__ = ["__version__"]
