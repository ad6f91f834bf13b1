"""The HTTP API, one module per resource: reports and incidents (`api.py`), devices,
groups, a leader's groups (`leaders.py`), silences, rules, keys and pairing (`access.py`),
operations (deliveries, metrics), and the leaders' app's files (`pwa.py`).

Conventions for a handler (follow them in new modules):

- Services come from the app, each under its own typed key (`web/services.py`): take
  `request.app[GROUPS]`, `request.app[RULES]`, `request.app[CLOCK]` ..., never the whole
  pipeline (`api.PIPELINE` is for accepting reports only). The keys hold the store's small
  protocols (`store/ports.py`), so a test can set a stand-in for one. `app.make_app` sets
  them all.
- Errors are raised, not returned: `raise ProblemError(status, title, detail, errors=...)`
  (`web/problems.py`, RFC 9457 problem+json). Helpers return plain values and raise the
  same way (`read_body`, `device_leader`, `read_json`), so no caller checks what it got.
- Domain decisions live in the domain, as pure functions with their tests: who may
  acknowledge a group is `dispatcher.acks`, which token a phone's registration retires is
  `dispatcher.devices`; the handler reads, asks, writes and answers.
- Every handler declares its scope with `@requires(...)` (`web/auth.py`) and describes
  itself with `@documented(...)` for the OpenAPI document (`web/openapi.py`).
"""
