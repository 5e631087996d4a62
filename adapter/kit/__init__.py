"""The other party's side: what an organisation (or its leverancier) runs against the adapter.

This room owns the clients behind `dk-adapter send` (a BerichtVerwerk batch over ebMS) and
`dk-adapter send-zaak` (a Lopende Zaken update over WUS), the temporary mTLS endpoint that
receives the asynchronous BerichtVerwerkResponse, the mTLS SOAP client and the request
builders they share, and later the conformance kit. It may use the server's rooms (their
contracts, parsers and message builders); server code never imports it, so the adapter runs
and is tested without the client side ever being loaded.
"""
