"""sandan's HTTP gateway: firms without a Kafka client declare documents and read receipts;
reviewers act on diverted tickets.

``sandan gateway`` runs one process; run any number of them behind a load balancer: a gateway
keeps no state beyond its Kafka producer (the receipts cursor carries its own position).
Built on aiohttp.web, already installed through faust: a C HTTP parser, and server, client
(for the tests) and long-polling in one library, on the asyncio loop aiokafka runs on.

Modules: :mod:`~gateway.app` routes and handlers, :mod:`~gateway.requests` body splitting,
validation and authorization (pure), :mod:`~gateway.keys` the keys file, :mod:`~gateway.produce`
the producer and its 503s, :mod:`~gateway.cursor` the receipts cursor (pure),
:mod:`~gateway.receipts` the receipt readers, :mod:`~gateway.reviews` the reviews and the
wait for their results, :mod:`~gateway.tail` the watcher both of them tail a topic with,
:mod:`~gateway.errors` the error tree,
:mod:`~gateway.models` the response bodies, :mod:`~gateway.openapi`, :mod:`~gateway.metrics`,
:mod:`~gateway.main` the server process.
"""

__all__: tuple[str, ...] = ()
