"""General helpers every package may use: the lowest layer beside ``errors``.

* :mod:`~cryptotrading.common.clock` -- the UTC clock: ``utcnow``, naive-as-UTC
  conversion, ISO-8601 text of datetimes and epoch-ms times, parsing of ISO input.
* :mod:`~cryptotrading.common.checks` -- input checks shared by the domains (text,
  JSON documents, numbers, probabilities, datetimes), each failing with a
  :class:`~cryptotrading.errors.ValidationError` that names the value.
* :mod:`~cryptotrading.common.views` -- JSON-ready views of ORM rows and values
  (datetimes as ISO text, decimals as plain text, bytes as their length).

These modules import only :mod:`cryptotrading.errors`, the standard library and
SQLAlchemy's inspection API, so ``db``, ``models``, the domains, ``ops`` and the
interfaces can all use them (see ``tests/test_layers.py``). A helper used by more
than one package belongs here, once; a helper of one domain stays in that domain.
"""
