"""Registry of pre-trained encoders shipped as package data (``registry.json``)."""
