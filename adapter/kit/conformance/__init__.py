"""The conformance kit: test a Digikoppeling endpoint (server mode), grade a client (client mode).

Server mode (`dk-adapter conformance run`, `server_mode.py`) plays a leverancier's
organisation against any endpoint offering MijnOverheid's services and checks every answer
and receipt; client mode (`dk-adapter conformance listen`, `client_mode.py`) plays
MijnOverheid with the real adapter behind a grader that records what each request a
leverancier's client sends does wrong. Both produce the same `Report` (`model.py`), written
as a console table, JUnit XML and a self-contained HTML page (`reports.py`).
"""
