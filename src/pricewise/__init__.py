"""pricewise: price suggestions for second-hand marketplace listings, with the MLOps lifecycle around them."""

__version__ = "0.1.0"
