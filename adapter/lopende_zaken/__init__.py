"""Lopende Zaken status updates. Not built yet: see the Lopende Zaken issue."""
