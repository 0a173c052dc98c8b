"""The Tidewatch service: settings, app factory, HTTP routes, storage, pipeline and CLI."""

__version__ = "0.1.0.dev0"
