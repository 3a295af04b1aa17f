#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: spdkvirt authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: an export of an spdkvirt volume over NVMe-oF/TCP or iSCSI, present or absent."""

DOCUMENTATION = r'''
---
module: export
short_description: Export spdkvirt volumes over NVMe-oF/TCP or iSCSI
version_added: 0.1.0
description:
  - Makes the export of a volume over one protocol present, with the hosts allowed to connect and
    their authentication as given, or absent, through the cluster's admin API.
  - A volume has at most one export per protocol. An export that exists with the same access rules
    is left alone and reported unchanged; one with other rules is rewritten in place (its target
    name stays the same).
  - The options describe the whole access rule set; an option left out takes its default
    (no named hosts, V(ANY) initiators and netmasks, no CHAP).
author:
  - spdkvirt authors (@spdkvirt)
extends_documentation_fragment:
  - spdkvirt.cluster.api
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the volume's exports and reports what would change; writes nothing.
  diff_mode:
    support: full
    details: Shows the export's access rules before and after (never CHAP secrets).
  platform:
    platforms: posix
options:
  volume:
    description:
      - Name of the volume to export.
    type: str
    required: true
  protocol:
    description:
      - V(nvmf) for NVMe-oF over TCP, V(iscsi) for iSCSI.
    type: str
    required: true
    choices: [nvmf, iscsi]
  hosts:
    description:
      - Host NQNs allowed to connect (O(protocol=nvmf) only).
    type: list
    elements: str
  allow_any_host:
    description:
      - Any host may connect (O(protocol=nvmf) only).
      - Defaults to V(false) for O(protocol=nvmf).
    type: bool
  dhchap:
    description:
      - DH-HMAC-CHAP for the named O(hosts), by the names of keys in the nodes' SPDK keyrings
        (O(protocol=nvmf) only).
    type: dict
    suboptions:
      key:
        description:
          - Keyring name of the host key.
        type: str
        required: true
      ctrlr_key:
        description:
          - Keyring name of the controller key, for bidirectional authentication.
        type: str
  initiators:
    description:
      - iSCSI initiator names allowed to connect, or V(ANY) (O(protocol=iscsi) only).
      - Defaults to V([ANY]) for O(protocol=iscsi).
    type: list
    elements: str
  netmasks:
    description:
      - Networks the initiators may come from, or V(ANY) (O(protocol=iscsi) only).
      - Defaults to V([ANY]) for O(protocol=iscsi).
    type: list
    elements: str
  chap:
    description:
      - CHAP for iSCSI logins (O(protocol=iscsi) only); C(mutual_user) and C(mutual_secret) for mutual CHAP.
      - The API never shows secrets, so a changed secret alone is only applied with O(update_secrets=always).
    type: dict
    suboptions:
      user:
        description:
          - CHAP user name.
        type: str
        required: true
      secret:
        description:
          - CHAP secret, 12 to 255 printable characters without spaces.
        type: str
        required: true
      mutual_user:
        description:
          - User name the target answers with (mutual CHAP).
        type: str
      mutual_secret:
        description:
          - Secret of O(chap.mutual_user).
        type: str
  allow_second_protocol:
    description:
      - Kept for compatibility. An export over the other protocol than the volume already has is always
        refused, because SPDK lets one protocol at a time write a bdev.
    type: bool
    default: false
  update_secrets:
    description:
      - V(always) sends O(chap) again on every run (and reports a change);
        V(on_create) sends it only when the export is created or its other rules change.
    type: str
    choices: [always, on_create]
    default: on_create
  state:
    description:
      - V(present) makes the export exist with these rules; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: spdkvirt.cluster.volume
  - module: spdkvirt.cluster.cluster_info
'''

EXAMPLES = r'''
- name: Export db1 over NVMe-oF/TCP to one host
  spdkvirt.cluster.export:
    volume: db1
    protocol: nvmf
    hosts:
      - nqn.2014-08.org.nvmexpress:uuid:6c2b1f64-0c3a-4e6e-9f0e-2f6a8e1d3b7a

- name: Export logs over iSCSI with mutual CHAP to one initiator network
  spdkvirt.cluster.export:
    volume: logs
    protocol: iscsi
    initiators: [iqn.2005-03.org.open-iscsi:client1]
    netmasks: [192.0.2.0/24]
    chap:
      user: client1
      secret: "{{ vault_chap_secret }}"
      mutual_user: target1
      mutual_secret: "{{ vault_chap_mutual_secret }}"

- name: Remove the NVMe-oF export of db1
  spdkvirt.cluster.export:
    volume: db1
    protocol: nvmf
    state: absent
'''

RETURN = r'''
export:
  description:
    - The export as the API shows it (after the change); empty when it is absent.
    - In check mode, the rules it would have.
  returned: always
  type: dict
  sample:
    volume: db1
    export_id: nvmf0
    protocol: nvmf
    node: n1
    state: active
    nvmf:
      subnqn: nqn.2024-01.io.spdkvirt:vol:db1
      listeners:
        - traddr: 192.0.2.11
          trsvcid: "4420"
      hosts: [nqn.2014-08.org.nvmexpress:uuid:6c2b1f64-0c3a-4e6e-9f0e-2f6a8e1d3b7a]
      allow_any_host: false
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.spdkvirt.cluster.plugins.module_utils.api_client import (
    API_ARGUMENT_SPEC,
    NOT_FOUND,
    ApiError,
    run_module,
)

OPTIONS = {
    'nvmf': ('hosts', 'allow_any_host', 'dhchap'),
    'iscsi': ('initiators', 'netmasks', 'chap'),
}


def wanted_rules(p):
    """The access rules asked for, with the API's defaults filled in (never secrets)."""
    if p['protocol'] == 'nvmf':
        rules = {'hosts': sorted(set(p['hosts'] or [])), 'allow_any_host': bool(p['allow_any_host'])}
        if p['dhchap']:
            rules['dhchap'] = {k: v for k, v in p['dhchap'].items() if v is not None}
        return rules
    rules = {'initiators': sorted(set(p['initiators'] or ['ANY'])), 'netmasks': sorted(set(p['netmasks'] or ['ANY']))}
    if p['chap']:
        rules['chap'] = {k: p['chap'][k] for k in ('user', 'mutual_user') if p['chap'].get(k) is not None}
    return rules


def shown_rules(export):
    """The access rules an export shows (keys the API does not show are left out)."""
    if not export:
        return {}
    part = export.get(export['protocol']) or {}
    rules = {}
    for key in OPTIONS[export['protocol']]:
        if key in part:
            value = part[key]
            rules[key] = sorted(value) if isinstance(value, list) else value
    return rules


def differs(wanted, shown):
    """Whether the rules shown differ from the ones wanted, on what the API shows.

    A server that shows no rules at all is taken at its word only about the export's existence."""
    for key, value in wanted.items():
        if key in shown and shown[key] != value:
            return True
    return any(key in shown and key not in wanted for key in ('dhchap', 'chap'))


def summary(export, rules):
    if not export:
        return {}
    out = {'volume': export['volume'], 'protocol': export['protocol']}
    out.update(rules)
    return out


def find(client, volume, protocol):
    """The volume's export over ``protocol``, None if it has none; NotFound when the volume is gone."""
    for export in client.call('export_list', {'volume': volume}):
        if export.get('volume') == volume and export.get('protocol') == protocol:
            return export
    return None


def check_options(module):
    p = module.params
    other = 'iscsi' if p['protocol'] == 'nvmf' else 'nvmf'
    for key in OPTIONS[other]:
        if p[key] is not None:
            module.fail_json(msg='%s: only with protocol %s (protocol is %s)' % (key, other, p['protocol']))
    chap = p['chap'] or {}
    if (chap.get('mutual_user') is None) != (chap.get('mutual_secret') is None):
        module.fail_json(msg='chap: mutual_user and mutual_secret go together')


def volume_exists(client, volume):
    try:
        client.call('volume_get', {'name': volume})
    except ApiError as e:
        if e.code == NOT_FOUND:
            return False
        raise
    return True


def run(module, client):
    p = module.params
    volume, protocol = p['volume'], p['protocol']
    current = find(client, volume, protocol)
    before = summary(current, shown_rules(current))
    if p['state'] == 'absent':
        if current is None:
            return dict(changed=False, export={}, diff=dict(before={}, after={}))
        if not module.check_mode:
            try:
                client.call('export_delete', {'volume': volume, 'export_id': current['export_id']})
            except ApiError as e:
                if e.code != NOT_FOUND:
                    raise
        return dict(changed=True, export={}, diff=dict(before=before, after={}))

    wanted = wanted_rules(p)
    resend_secrets = p['update_secrets'] == 'always' and bool(p['chap'])
    if current is not None and not differs(wanted, shown_rules(current)) and not resend_secrets:
        return dict(changed=False, export=current, diff=dict(before=before, after=before))
    if current is None and not volume_exists(client, volume):
        if not module.check_mode:
            module.fail_json(msg='volume: no volume %s to export' % volume)
        module.warn('volume %s does not exist (yet): the export is predicted as if it did' % volume)
    predicted = summary({'volume': volume, 'protocol': protocol}, wanted)
    if module.check_mode:
        after = dict(current or {'volume': volume, 'protocol': protocol})
        after[protocol] = dict(after.get(protocol) or {}, **wanted)
        return dict(changed=True, export=after, diff=dict(before=before, after=predicted))
    params = {'volume': volume, 'protocol': protocol, 'allow_second_protocol': p['allow_second_protocol'],
              'idempotency_key': client.new_key()}
    for key in OPTIONS[protocol]:
        value = p[key]
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v is not None}
        if value is not None:
            params[key] = value
    export = client.call('export_create', params)
    shown = shown_rules(export)
    return dict(changed=True, export=export, diff=dict(before=before, after=summary(export, shown) or predicted))


def main():
    argument_spec = dict(
        API_ARGUMENT_SPEC,
        volume=dict(type='str', required=True),
        protocol=dict(type='str', required=True, choices=['nvmf', 'iscsi']),
        hosts=dict(type='list', elements='str'),
        allow_any_host=dict(type='bool'),
        dhchap=dict(type='dict', options=dict(
            key=dict(type='str', required=True, no_log=False),
            ctrlr_key=dict(type='str', no_log=False),
        )),
        initiators=dict(type='list', elements='str'),
        netmasks=dict(type='list', elements='str'),
        chap=dict(type='dict', options=dict(
            user=dict(type='str', required=True),
            secret=dict(type='str', required=True, no_log=True),
            mutual_user=dict(type='str'),
            mutual_secret=dict(type='str', no_log=True),
        )),
        allow_second_protocol=dict(type='bool', default=False),
        update_secrets=dict(type='str', choices=['always', 'on_create'], default='on_create'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[('api_token', 'api_token_file')])
    check_options(module)
    run_module(module, lambda client: run(module, client), absent={'export': {}})


if __name__ == '__main__':
    main()
