"""Shipped data: the seed corpus, the bootstrap policy and the trained classifier artefact.

It is installed as the package ``tierwise.data`` so the service finds it without a checkout.
"""
