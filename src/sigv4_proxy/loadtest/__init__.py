"""`sigv4-proxy loadtest dsql`: the DSQL load test on Locust (its environment and runners used as a library).

Nothing is imported here: importing :mod:`locust` monkey-patches the whole process with gevent, so only the
processes that run users import it (:mod:`.engine`, :mod:`.locustfile`), and they import it before psycopg.

* :mod:`.settings` — what a run does (plain data); :mod:`.results` — what it found (plain data).
* :mod:`.locustfile` — the Locust user, the ``--dsql-*`` options and the counters workers report (also
  ``locust -f <its path>``, with :mod:`.standalone` doing there what the engine does around a run).
* :mod:`.engine` — :func:`~.engine.run_loadtest` (local or master) and :func:`~.engine.run_worker`.
* :mod:`.client` — connections and failures (SQLSTATE, the server's words, a refused login's diagnosis).
* :mod:`.schema` — the table, its rows, the INSERT and the count; :mod:`.emulated` — `emulate dsql` in a child.
* :mod:`.progress` — the live progress line; :mod:`.summary` — the table printed at the end;
  :mod:`.report` — the HTML and JSON reports.
"""
