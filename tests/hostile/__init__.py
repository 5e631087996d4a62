"""The hostile-input corpus (issue 14 item 8): what an attacker with a valid certificate sends.

`shapes` holds hostile XML as changes to a document the adapter accepts, so one shape is
tried on every parse path (a WUS envelope, an ebMS SOAP part, a BerichtVerwerk batch);
`wus_cases` and `ebms_cases` list the cases with the exact code each must get; `wire` sends
them and reads what the server stored and what its processes hold; `test_corpus` runs them
all against one real server per database.
"""
