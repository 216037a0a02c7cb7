"""Code both the web site and the relay rely on: the event contract, settings, logging."""
