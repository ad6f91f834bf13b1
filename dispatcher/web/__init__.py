"""The HTTP API, one module per resource: reports (`reports.py`), incidents
(`incidents.py`), the health check (`health.py`), devices, groups, a leader's groups
(`leaders.py`), silences, rules, keys and pairing (`access.py`), operations (deliveries,
metrics), and the leaders' app's files (`pwa.py`); the operators' desk is `desk/`.

Conventions for a handler (follow them in new modules):

- Services come from the app, each under its own typed key (`web/services.py`): take
  `request.app[GROUPS]`, `request.app[RULES]`, `request.app[CLOCK]` ..., never the whole
  pipeline (reports go in through `INTAKE`, its one door). The keys hold small protocols
  (the store's are `store/ports.py`), so a test can set a stand-in for one. `app.make_app`
  sets them all.
- Errors are raised, not returned: `raise ProblemError(status, title, detail, errors=...)`
  (`web/problems.py`, RFC 9457 problem+json). Helpers return plain values and raise the
  same way (`read_body`, `device_leader`, `read_json`), so no caller checks what it got;
  so do the auth middleware and the desk's session check. (A page for a person, such as
  the desk's sign-in form, is rendered and returned, not raised.)
- Domain decisions live in the domain, as pure functions with their tests: who may
  acknowledge a group and whose groups a leader sees is `dispatcher.acks`, whether a
  report reaches a team is `targets.reaches_team`, which token a phone's registration
  retires is `dispatcher.devices`, how many wrong keys or codes an address may try is
  `dispatcher.guessing`; the handler reads, asks, writes and answers.
- Every handler declares its scope with `@requires(...)` (`web/auth.py`) and describes
  itself with `@documented(...)` for the OpenAPI document (`web/openapi.py`).
"""
