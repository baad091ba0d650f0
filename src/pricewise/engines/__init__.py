"""Engines for batch work that outgrows one process: Apache Spark (the optional extra ``pricewise[spark]``)."""
