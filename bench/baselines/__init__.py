"""The apps bench/run.py measures the adapter against: the same request and answer with as
little work as possible (`bare_lxml`), and the same bare work in spyne (`spyne_app`), served
by `serve` with the adapter's gunicorn settings and TLS context."""
