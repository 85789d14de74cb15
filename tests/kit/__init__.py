"""The test kit shared by the unit tests, tests/haproxy and every Molecule scenario's verifier.

Importable as `kit` wherever pytest runs from this repository (pyproject's `pythonpath`); no test
loads another directory's conftest or edits sys.path. One module per job:

- `bundle`: the bundle's own facts the tests compare against (role defaults, haproxy's proxy names)
- `wait`: waiting for a condition, with the reason in the failure
- `haproxy_socket`: the one reader of haproxy's stats and master CLI sockets
- `scenario`: a Molecule scenario's configured values (`group_vars`), running playbooks as operators do
- `hosts`: what the verifiers ask of a container (haproxy's sockets, a service's pid and limits, files)
- `probes`: the chain's subscribers on app01 (the heartbeat subscriber, background probe units)
- `browser`: headless Chromium over the DevTools protocol
"""
