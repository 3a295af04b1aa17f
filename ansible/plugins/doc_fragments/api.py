# -*- coding: utf-8 -*-
# Copyright: spdkvirt authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Documentation of the options every module of the collection has for reaching the admin API."""


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  api_url:
    description:
      - Where the admin API is served, tried in order.
      - A UNIX socket (V(unix:/path), V(unix:///path) or V(/path)), reachable on the host the module runs on,
        or an HTTP(S) endpoint (V(http://host:port), V(https://host:port)).
      - An endpoint that cannot be reached, or whose controller does not lead, is left for the next one.
      - Set it for all modules of the collection at once with C(module_defaults) for the
        C(group/spdkvirt.cluster.api) action group.
    type: list
    elements: str
    default: ['unix:/run/spdkvirt/api.sock']
  api_token:
    description:
      - Bearer token for HTTP(S) endpoints.
      - Mutually exclusive with O(api_token_file).
    type: str
  api_token_file:
    description:
      - File on the managed host holding the bearer token for HTTP(S) endpoints.
      - It must not be readable by group or others (mode V(0600)).
    type: path
  ca_path:
    description:
      - PEM file of the CA that signed the HTTPS endpoint's certificate.
    type: path
  validate_certs:
    description:
      - Whether to verify the certificate of an HTTPS endpoint.
    type: bool
    default: true
  api_timeout:
    description:
      - Seconds a call may take, retries included.
      - A call whose outcome is unknown, or whose object is busy, or that no controller takes because
        none leads (an election under way), is made again until then.
    type: int
    default: 120
notes:
  - The module talks to spdkvirt's admin API (JSON-RPC 2.0) with the Python standard library only;
    spdkvirt need not be installed where it runs.
  - Writes carry an idempotency key, so a write repeated after a broken connection happens once.
'''
