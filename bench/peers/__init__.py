"""Peers: the same profile job written on other stream-processing frameworks, for the side-by-side benchmark."""
