"""MijnOverheid Digikoppeling adapter: the server organisations deliver to over mutual TLS."""

__version__ = "0.1.0"
