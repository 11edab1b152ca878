"""The Prometheus exporter behind ``crashext exporter``.

Kept apart from serving:

- :mod:`.logwatch`: the kernel log, followed like ``tail -F`` (a file) or
  read from ``/dev/kmsg``, cut into records by
  :func:`crashext.sources.kmsg.extract` and counted by order and process;
- :mod:`.families`: plain readings (cgroupfs, a :class:`FragReport`, a memcg
  report, ``/proc/vmstat``, log counts) to Prometheus metric families;
- :mod:`.collector`: one scrape: reads each source, survives its errors
  (counted per source), caches what drgn reads between refreshes;
- :mod:`crashext.commands.exporter`: options, the HTTP server, the textfile.

Only :mod:`.families` and :mod:`.collector` import ``prometheus_client``
(the optional extra ``crashext[exporter]``).
"""
