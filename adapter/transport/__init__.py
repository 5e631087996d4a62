"""HTTP side: the WSGI app and its routes, the TLS context, client certificate to `Party`."""
