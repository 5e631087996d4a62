"""The citizen side: Berichtenbox and Lopende Zaken pages, settings and the login seam.

Plain WSGI (Werkzeug) with Jinja2 templates, on a listener of its own. It reads and changes
the store only through `adapter.store.citizen`, and knows no SOAP, ebMS or transport code.
"""
