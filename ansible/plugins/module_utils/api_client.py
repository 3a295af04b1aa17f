# -*- coding: utf-8 -*-
# Copyright: spdkvirt authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Client of spdkvirt's admin API (JSON-RPC 2.0) for the collection's modules.

It runs on managed hosts that need not have spdkvirt installed, so it uses only the standard library
and ansible.module_utils. Endpoints are tried in order: a UNIX socket (``unix:/path``,
``unix:///path`` or ``/path``; JSON values back to back, like SPDK's RPC socket) or HTTP(S)
(``http(s)://host:port``, ``POST /`` with a bearer token). An endpoint that cannot be reached, or
whose controller does not lead (NotLeader) or cannot serve now (Unavailable), is left for the next
one; the first that answers is kept for the calls after it.
"""

import json
import os
import socket
import time
import uuid
from urllib.error import HTTPError, URLError

from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.urls import open_url

DEFAULT_API_URL = 'unix:/run/spdkvirt/api.sock'
MAX_ANSWER = 64 << 20

#: JSON-RPC and service error codes (spdkvirt/api/errors.py)
INVALID_PARAMS = -32602
UNAVAILABLE = -32001
NOT_LEADER = -32002
OUTCOME_UNKNOWN = -32003
NOT_FOUND = -32004
ALREADY_EXISTS = -32005
REFUSED = -32008
BUSY = -32010

#: errors that say: ask another controller
MOVE_ON = (NOT_LEADER, UNAVAILABLE)
#: errors that say: the same call may be made again (with the same idempotency key)
RETRY = (OUTCOME_UNKNOWN, BUSY)

API_ARGUMENT_SPEC = dict(
    api_url=dict(type='list', elements='str', default=[DEFAULT_API_URL]),
    api_token=dict(type='str', no_log=True),
    api_token_file=dict(type='path'),
    ca_path=dict(type='path'),
    validate_certs=dict(type='bool', default=True),
    api_timeout=dict(type='int', default=120),
)


class ApiError(Exception):
    """An error answer of the API: code, one-line message, data object."""

    def __init__(self, code, message, data=None):
        self.code = code
        self.message = message
        self.data = data if isinstance(data, dict) else {}
        super(ApiError, self).__init__(message)

    @property
    def path(self):
        """The field the error names (``$.size_bytes``), or None."""
        return self.data.get('path')


class ApiUnreachable(Exception):
    """No endpoint answered the call."""


class NoLeader(ApiUnreachable):
    """Every endpoint answered, and none of them leads (or can serve) now: a new leader may come."""


def read_token(path):
    """The token in a file, which must not be readable by group or others."""
    try:
        st = os.stat(path)
        with open(path, 'rb') as f:
            raw = f.read(4097)
    except OSError as e:
        raise ApiUnreachable('api_token_file %s: %s' % (path, to_native(e.strerror or e))) from None
    if st.st_mode & 0o077:
        raise ApiUnreachable('api_token_file %s is accessible by group or others (mode %04o): chmod 600 it'
                             % (path, st.st_mode & 0o7777))
    token = to_text(raw, errors='surrogate_or_strict').strip()
    if not token:
        raise ApiUnreachable('api_token_file %s is empty' % path)
    return token


def unix_path(url):
    """The socket path of a UNIX endpoint, or None for an HTTP(S) one."""
    if url.startswith(('/', '.')):
        return url
    if url.startswith('unix://'):
        return url[len('unix://'):]
    if url.startswith('unix:'):
        return url[len('unix:'):]
    if url.startswith(('http://', 'https://')):
        return None
    raise ApiUnreachable('api_url %s: use unix:/path, /path, http://host:port or https://host:port' % url)


def _decode_one(buf):
    """The first complete JSON value in ``buf`` (bytes), or None while it is incomplete."""
    try:
        text = buf.decode('utf-8').lstrip()
        value, _end = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    return value


class ApiClient(object):
    """Calls the admin API through the first endpoint of ``urls`` that answers."""

    def __init__(self, urls, token=None, ca_path=None, validate_certs=True, timeout=120):
        if not urls:
            raise ApiUnreachable('api_url is empty')
        self.urls = list(urls)
        self.token = token
        self.ca_path = ca_path
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.current = None
        self._ids = 0

    @classmethod
    def from_module(cls, module):
        """A client from the module's api_* options."""
        p = module.params
        token = p.get('api_token')
        if not token and p.get('api_token_file'):
            token = read_token(p['api_token_file'])
        return cls(p['api_url'], token=token, ca_path=p.get('ca_path'), validate_certs=p['validate_certs'],
                   timeout=p['api_timeout'])

    @staticmethod
    def new_key():
        """An idempotency key for one write: a retry with it returns the first answer."""
        return 'ansible-%s' % uuid.uuid4().hex

    def call(self, method, params=None):
        """One call; its result, or ApiError for an error answer; ApiUnreachable when no endpoint serves.

        Calls whose outcome is unknown, or whose object is busy, or that no controller could take
        because none leads (an election under way), are made again until the timeout (writes carry
        an idempotency key, so a repeated write happens once)."""
        deadline = time.time() + self.timeout
        delay = 0.2
        while True:
            try:
                return self._call_any(method, params or {}, deadline)
            except ApiError as e:
                if e.code not in RETRY or time.time() + delay > deadline:
                    raise
            except NoLeader:
                if time.time() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _call_any(self, method, params, deadline):
        order = self.urls if self.current is None else [self.current] + [u for u in self.urls if u != self.current]
        problems = []
        unreachable = False
        for url in order:
            left = deadline - time.time()
            if left <= 0:
                problems.append('%s: no time left' % url)
                break
            try:
                result = self._call_one(url, method, params, left)
            except ApiUnreachable as e:
                problems.append('%s: %s' % (url, to_native(e)))
                unreachable = True
                continue
            except ApiError as e:
                if e.code in MOVE_ON:
                    problems.append('%s: %s' % (url, e.message))
                    continue
                self.current = url
                raise
            self.current = url
            return result
        self.current = None
        error = ApiUnreachable if unreachable or not problems else NoLeader
        raise error('no controller of the API served %s: %s' % (method, '; '.join(problems)))

    def _call_one(self, url, method, params, timeout):
        self._ids += 1
        rid = self._ids
        body = json.dumps({'jsonrpc': '2.0', 'id': rid, 'method': method, 'params': params}).encode('utf-8')
        path = unix_path(url)
        raw = self._unix(path, body, timeout) if path is not None else self._http(url, body, timeout)
        try:
            answer = json.loads(to_text(raw, errors='surrogate_or_strict'))
        except ValueError as e:
            raise ApiUnreachable('the answer is not JSON: %s' % to_native(e)) from None
        if not isinstance(answer, dict):
            raise ApiUnreachable('the answer is not a JSON-RPC response')
        if 'error' in answer:
            err = answer['error'] if isinstance(answer['error'], dict) else {}
            raise ApiError(int(err.get('code', -32000)), to_text(err.get('message', 'error')), err.get('data'))
        if answer.get('id') != rid:
            raise ApiUnreachable('the answer is for another request')
        return answer.get('result')

    @staticmethod
    def _unix(path, body, timeout):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            try:
                sock.connect(path)
                sock.sendall(body)
                buf = b''
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ApiUnreachable('the server closed the connection')
                    buf += chunk
                    if len(buf) > MAX_ANSWER:
                        raise ApiUnreachable('answer larger than %d bytes' % MAX_ANSWER)
                    if _decode_one(buf) is not None:
                        return buf
            except socket.timeout:
                raise ApiUnreachable('no answer within %d s' % timeout) from None
            except OSError as e:
                raise ApiUnreachable(to_native(e.strerror or e)) from None
        finally:
            sock.close()

    def _http(self, url, body, timeout):
        headers = {'Content-Type': 'application/json'}
        if self.token:
            headers['Authorization'] = 'Bearer %s' % self.token
        try:
            resp = open_url(url.rstrip('/') + '/', data=body, headers=headers, method='POST',
                            validate_certs=self.validate_certs, ca_path=self.ca_path, timeout=timeout,
                            follow_redirects='none')
            return resp.read(MAX_ANSWER + 1)
        except HTTPError as e:
            if e.code == 401:
                raise ApiUnreachable('the API refused the token (HTTP 401): set api_token or api_token_file') from None
            raise ApiUnreachable('HTTP %s %s' % (e.code, to_native(e.reason))) from None
        except URLError as e:
            raise ApiUnreachable(to_native(e.reason)) from None
        except socket.timeout:
            raise ApiUnreachable('no answer within %d s' % timeout) from None
        except OSError as e:
            raise ApiUnreachable(to_native(e)) from None


def field_of(error, names=None):
    """The module option an API error names (``$.size_bytes`` -> ``size``), or None."""
    path = error.path
    if not path:
        return None
    field = path[2:] if path.startswith('$.') else path.lstrip('$')
    head = field.split('.', 1)[0].split('[', 1)[0]
    if names and head in names:
        field = names[head] + field[len(head):]
    return field or None


def describe(error, names=None):
    """One line for an API error, naming the option it is about."""
    field = field_of(error, names)
    reason = error.data.get('reason')
    text = error.message
    if reason and reason not in text:
        text = '%s: %s' % (text, reason)
    return '%s (field: %s)' % (text, field) if field else text


def run_module(module, work, names=None, absent=None):
    """Run ``work(client)`` and exit with its result (without ``diff`` unless in diff mode).

    An API error fails the module naming the option at fault (``names``: API params -> options);
    with ``absent`` given, NotFound under ``state: absent`` exits unchanged with ``absent``.
    """
    try:
        result = work(ApiClient.from_module(module))
    except ApiError as e:
        if absent is not None and e.code == NOT_FOUND and module.params.get('state') == 'absent':
            module.exit_json(changed=False, **absent)
        module.fail_json(msg=describe(e, names), api_error=dict(code=e.code, message=e.message, data=e.data))
    except ApiUnreachable as e:
        module.fail_json(msg=str(e))
    if not module._diff:
        result.pop('diff', None)
    module.exit_json(**result)
