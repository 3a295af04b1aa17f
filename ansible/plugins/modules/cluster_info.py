#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: spdkvirt authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: what an spdkvirt cluster holds, read through its admin API."""

DOCUMENTATION = r'''
---
module: cluster_info
short_description: Read the state of an spdkvirt cluster
version_added: 0.1.0
description:
  - Returns the cluster's status (leader, counts of nodes, devices and volumes by state, latest epoch),
    its nodes, devices, volumes and exports, and the most recent quiesce epochs, as the admin API
    lists them.
  - Never changes anything.
author:
  - spdkvirt authors (@spdkvirt)
extends_documentation_fragment:
  - spdkvirt.cluster.api
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  epochs:
    description:
      - How many of the most recent quiesce epochs to return (V(0) for none).
    type: int
    default: 20
seealso:
  - module: spdkvirt.cluster.volume
  - module: spdkvirt.cluster.export
'''

EXAMPLES = r'''
- name: Read the cluster
  spdkvirt.cluster.cluster_info:
  register: cluster

- name: Every node is up
  ansible.builtin.assert:
    that: cluster.cluster_status.nodes.down == 0

- name: Names of the degraded volumes
  ansible.builtin.debug:
    msg: "{{ cluster.volumes | selectattr('state', 'equalto', 'degraded') | map(attribute='name') | list }}"
'''

RETURN = r'''
cluster_status:
  description: Leader, counts of nodes, devices and volumes by state, latest epoch number.
  returned: always
  type: dict
  sample:
    leader:
      holder: ctl1
    nodes: {up: 3, down: 0}
    devices: {available: 6}
    volumes: {healthy: 2, degraded: 0, rebuilding: 0, failed: 0}
    epoch: 4
nodes:
  description: Every storage node (C(node_id), C(address), C(state), C(alive), number of C(devices)).
  returned: always
  type: list
  elements: dict
devices:
  description: Every device (C(node), C(device_id), C(bdev), C(state), C(size_bytes), C(free_bytes), C(legs)).
  returned: always
  type: list
  elements: dict
volumes:
  description: Every volume, as M(spdkvirt.cluster.volume) returns one.
  returned: always
  type: list
  elements: dict
exports:
  description: Every export, as M(spdkvirt.cluster.export) returns one.
  returned: always
  type: list
  elements: dict
epochs:
  description: The most recent quiesce epochs, newest first.
  returned: always
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.spdkvirt.cluster.plugins.module_utils.api_client import (
    API_ARGUMENT_SPEC,
    run_module,
)


def main():
    argument_spec = dict(API_ARGUMENT_SPEC, epochs=dict(type='int', default=20))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[('api_token', 'api_token_file')])
    epochs = module.params['epochs']
    if epochs < 0:
        module.fail_json(msg='epochs: must be 0 or more, got %d' % epochs)
    run_module(module, lambda client: dict(
        changed=False,
        cluster_status=client.call('cluster_status'),
        nodes=client.call('node_list'),
        devices=client.call('device_list'),
        volumes=client.call('volume_list'),
        exports=client.call('export_list'),
        epochs=client.call('epoch_list', {'limit': epochs}) if epochs else [],
    ))


if __name__ == '__main__':
    main()
