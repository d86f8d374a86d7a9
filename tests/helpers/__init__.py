"""Plain helpers shared by the tests: builders of the API's bodies and the things they make, the flow scenarios,
a real webhook receiver, and small readers of streams, tables and metrics.

Fixtures live in `conftest.py` files and reach tests through pytest; everything else a test module shares with
another lives here, so no test module imports another test module or a conftest.

- `settings`: the test settings and the repository root; `auth`: bearer-token headers; `waiting`: `eventually`.
- `db`: truncating every service's tables, reading rows, saving and restoring tables.
- `problems`: assertions on RFC 9457 problem+json answers.
- `catalog`: item codes and places the tests use.
- `needs`, `supply`, `matching`, `logistics`, `webhooks`: builders of each service's bodies and resources.
- `http`: reading JSON and following pages.
- `streams`: services' runtimes, relaying outboxes, running consumers and jobs, reading and writing streams.
- `scenario`: a gift on its way (site → need → offer → proposals → shipment); `commitments`: a lot and the
  needs it may serve, and what of it is committed; `history`: a recorded history of every service's events.
- `receiver`: a real local HTTP receiver of webhooks; `metrics`: Prometheus samples from `GET /metrics`.
- `spreadsheets`: hostile spreadsheets built by hand; `scoring`: a plain-Python reference of matching's rules
  and random instances; `surface`: every operation of the merged OpenAPI document, with a valid body for each;
  `faults`: the fault tests' servers and probes; `processes`: services and worker replicas as processes of their own.
"""
