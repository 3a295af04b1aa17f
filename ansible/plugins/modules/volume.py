#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: spdkvirt authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: a volume of an spdkvirt cluster, present or absent."""

DOCUMENTATION = r'''
---
module: volume
short_description: Create, grow and delete volumes of an spdkvirt cluster
version_added: 0.1.0
description:
  - Makes a volume of an spdkvirt storage cluster present (created, or grown to O(size)) or absent,
    through the cluster's admin API.
  - A volume that exists with the asked size, redundancy and provisioning is left alone and
    reported unchanged.
  - Volumes never shrink; redundancy and thin provisioning cannot change once a volume exists.
    Asking for either fails and names the option.
author:
  - spdkvirt authors (@spdkvirt)
extends_documentation_fragment:
  - spdkvirt.cluster.api
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the volume and reports what would change; writes nothing.
  diff_mode:
    support: full
    details: Shows the volume's name, size, redundancy and provisioning before and after.
  platform:
    platforms: posix
options:
  name:
    description:
      - Name of the volume; lower case letters, digits and C(._-), at most 63 characters.
    type: str
    required: true
  size:
    description:
      - Size of the volume, in bytes (V(1073741824)) or with a binary unit like the C(spdkvirt)
        command line takes (V(64MiB), V(10G), V(1.5GiB); C(K), C(KB), C(KiB) are all 1024 bytes).
      - At least 1 MiB, a multiple of 4096 bytes, at most 1 PiB.
      - Needed to create a volume. For an existing volume a larger size grows it; a smaller one fails.
    type: raw
  redundancy:
    description:
      - Copies of the data, each on another node (V(1) keeps one copy).
      - When creating, the API's default is V(2). An existing volume must already have this redundancy.
    type: int
    choices: [1, 2, 3]
  thin:
    description:
      - Thin provisioned legs (space allocated on write).
      - When creating, the API's default is V(true). An existing volume must already be provisioned so.
    type: bool
  placement:
    description:
      - Where the legs may be placed when the volume is created (ignored for an existing volume).
    type: dict
    suboptions:
      nodes:
        description:
          - Only these nodes.
        type: list
        elements: str
      exclude_nodes:
        description:
          - Never these nodes.
        type: list
        elements: str
  state:
    description:
      - V(present) creates the volume or grows it to O(size); V(absent) deletes it.
      - A volume with exports cannot be deleted; remove them first (M(spdkvirt.cluster.export)).
    type: str
    choices: [present, absent]
    default: present
  wait:
    description:
      - With O(state=present), wait until the volume is V(healthy) (all copies in sync).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for O(wait).
    type: int
    default: 300
seealso:
  - module: spdkvirt.cluster.export
  - module: spdkvirt.cluster.cluster_info
'''

EXAMPLES = r'''
- name: A 10 GiB volume with two copies
  spdkvirt.cluster.volume:
    name: db1
    size: 10G
    redundancy: 2
    api_url: unix:/run/spdkvirt/api.sock

- name: Grow it, over HTTPS, and wait until every copy is in sync
  spdkvirt.cluster.volume:
    name: db1
    size: 20GiB
    wait: true
    api_url:
      - https://ctl1.example.com:8443
      - https://ctl2.example.com:8443
    api_token_file: /etc/spdkvirt/api.token
    ca_path: /etc/spdkvirt/ca.pem

- name: A thick volume placed away from one node
  spdkvirt.cluster.volume:
    name: scratch
    size: 1073741824
    thin: false
    placement:
      exclude_nodes: [n3]

- name: Delete a volume
  spdkvirt.cluster.volume:
    name: scratch
    state: absent
'''

RETURN = r'''
volume:
  description:
    - The volume as the API shows it (after the change); empty when it is absent.
    - In check mode, what the volume would be (fields the cluster chooses, like its owner, are left out).
  returned: always
  type: dict
  sample:
    name: db1
    uuid: 0f5b2a5e-2c8f-4d0e-9d7e-8a3c6b1e2f40
    size_bytes: 10737418240
    redundancy: 2
    thin: true
    raid_level: raid1
    owner_node: n1
    state: healthy
    epoch: 3
    generation: 1
    legs:
      - leg_id: db1.0
        node: n1
        device: n1d1
        state: in_sync
    exports: []
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.spdkvirt.cluster.plugins.module_utils.api_client import (
    ALREADY_EXISTS,
    API_ARGUMENT_SPEC,
    NOT_FOUND,
    ApiError,
    run_module,
)
from ansible_collections.spdkvirt.cluster.plugins.module_utils.sizes import SizeError, check_volume_size, parse_size

#: the API's params named as the module's options
NAMES = {'size_bytes': 'size'}
COMPARED = ('name', 'size_bytes', 'redundancy', 'thin')


def summary(volume):
    """What the diff shows of a volume."""
    if not volume:
        return {}
    return {k: volume[k] for k in COMPARED if k in volume}


def get_volume(client, name):
    try:
        return client.call('volume_get', {'name': name})
    except ApiError as e:
        if e.code == NOT_FOUND:
            return None
        raise


def wait_healthy(module, client, name, timeout):
    end = time.time() + timeout
    volume = None
    while time.time() < end:
        volume = get_volume(client, name)
        if volume is None:
            module.fail_json(msg='volume %s disappeared while waiting for it to be healthy' % name)
        if volume.get('state') == 'healthy':
            return volume
        time.sleep(1)
    state = volume.get('state') if volume else None
    module.fail_json(msg='volume %s is not healthy after %d s (state: %s)' % (name, timeout, state), volume=volume)


class VolumeModule(object):
    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.p = module.params

    def size(self):
        if self.p['size'] is None:
            return None
        try:
            return check_volume_size(parse_size(self.p['size']))
        except SizeError as e:
            self.module.fail_json(msg='size: %s' % e)

    def absent(self, current):
        name = self.p['name']
        if current is None:
            return dict(changed=False, volume={}, diff=dict(before={}, after={}))
        if not self.module.check_mode:
            try:
                self.client.call('volume_delete', {'name': name, 'idempotency_key': self.client.new_key()})
            except ApiError as e:
                if e.code != NOT_FOUND:
                    raise
        return dict(changed=True, volume={}, diff=dict(before=summary(current), after={}))

    def create(self, size):
        p = self.p
        if size is None:
            self.module.fail_json(msg='size is required to create volume %s' % p['name'])
        params = {'name': p['name'], 'size_bytes': size}
        for key in ('redundancy', 'thin'):
            if p[key] is not None:
                params[key] = p[key]
        placement = {k: v for k, v in (p['placement'] or {}).items() if v is not None}
        if placement:
            params['placement'] = placement
        predicted = {'name': p['name'], 'size_bytes': size, 'redundancy': params.get('redundancy', 2),
                     'thin': params.get('thin', True)}
        if self.module.check_mode:
            return dict(changed=True, volume=predicted, diff=dict(before={}, after=predicted))
        params['idempotency_key'] = self.client.new_key()
        try:
            volume = self.client.call('volume_create', params)
        except ApiError as e:
            if e.code != ALREADY_EXISTS:
                raise
            current = get_volume(self.client, p['name'])
            if current is None:
                raise
            return self.update(current, size)
        return dict(changed=True, volume=volume, diff=dict(before={}, after=summary(volume)))

    def update(self, current, size):
        p = self.p
        fixed = []
        for key in ('redundancy', 'thin'):
            if p[key] is not None and key in current and current[key] != p[key]:
                fixed.append('%s (the volume has %s, asked %s)' % (key, current[key], p[key]))
        if fixed:
            self.module.fail_json(msg='volume %s exists; these cannot change on an existing volume: %s'
                                  % (p['name'], ', '.join(fixed)), volume=current)
        if size is None or size == current['size_bytes']:
            return dict(changed=False, volume=current, diff=dict(before=summary(current), after=summary(current)))
        if size < current['size_bytes']:
            self.module.fail_json(msg='size: volume %s has %d bytes; volumes never shrink (asked %d)'
                                  % (p['name'], current['size_bytes'], size), volume=current)
        after = dict(current, size_bytes=size)
        if self.module.check_mode:
            return dict(changed=True, volume=after, diff=dict(before=summary(current), after=summary(after)))
        volume = self.client.call('volume_resize', {'name': p['name'], 'size_bytes': size,
                                                    'idempotency_key': self.client.new_key()})
        return dict(changed=True, volume=volume, diff=dict(before=summary(current), after=summary(volume)))

    def run(self):
        size = self.size()
        current = get_volume(self.client, self.p['name'])
        if self.p['state'] == 'absent':
            return self.absent(current)
        result = self.create(size) if current is None else self.update(current, size)
        if self.p['wait'] and not self.module.check_mode:
            result['volume'] = wait_healthy(self.module, self.client, self.p['name'], self.p['wait_timeout'])
        return result


def main():
    argument_spec = dict(
        API_ARGUMENT_SPEC,
        name=dict(type='str', required=True),
        size=dict(type='raw'),
        redundancy=dict(type='int', choices=[1, 2, 3]),
        thin=dict(type='bool'),
        placement=dict(type='dict', options=dict(
            nodes=dict(type='list', elements='str'),
            exclude_nodes=dict(type='list', elements='str'),
        )),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        wait=dict(type='bool', default=False),
        wait_timeout=dict(type='int', default=300),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[('api_token', 'api_token_file')])
    run_module(module, lambda client: VolumeModule(module, client).run(), NAMES)


if __name__ == '__main__':
    main()
