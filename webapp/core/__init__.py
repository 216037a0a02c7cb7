"""Site-wide pieces that belong to no feature: how the web process is served."""
