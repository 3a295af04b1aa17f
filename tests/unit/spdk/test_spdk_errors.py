"""The error table: SPDK's (method, code, message) as recorded from a real target -> exception type."""

from __future__ import annotations

import pickle

import pytest

from spdkvirt.spdk import errors as E


@pytest.mark.parametrize(
    ("method", "code", "message", "kind"),
    [
        # bdev RPCs: negative errno in the code
        ("bdev_get_bdevs", -19, "No such device", E.SpdkNotFound),
        ("bdev_get_bdevs", -110, "Connection timed out", E.SpdkTimedOut),
        ("bdev_get_bdevs", -32603, "spdk_json_decode_object failed", E.SpdkDecodeError),
        ("bdev_malloc_create", -17, "File exists", E.SpdkExists),
        ("bdev_malloc_create", -22, "Invalid argument", E.SpdkInvalid),
        ("bdev_aio_create", -2, "No such file or directory", E.SpdkNotFound),
        ("bdev_aio_create", -21, "Is a directory", E.SpdkInvalid),
        ("bdev_aio_rescan", -16, "Device or resource busy", E.SpdkBusy),
        ("bdev_error_inject_error", -32603, "spdk_json_decode_object failed", E.SpdkDecodeError),
        ("bdev_set_qos_limit", -32602, "Failed to configure rate limit: Resource temporarily unavailable", E.SpdkBusy),
        ("bdev_set_qos_limit", -22, "No rate limits specified", E.SpdkInvalid),
        (
            "bdev_nvme_attach_controller",
            -114,
            "A controller named nvme0 already exists with the specified network path",
            E.SpdkAlready,
        ),
        ("bdev_nvme_detach_controller", -19, "No such device", E.SpdkNotFound),
        # raid: errno codes, decode failures are -32700
        ("bdev_raid_create", -32700, "spdk_json_decode_object failed", E.SpdkDecodeError),
        ("bdev_raid_create", -1, "Failed to create RAID bdev r: Operation not permitted", E.SpdkBusy),
        ("bdev_raid_create", -17, "Failed to create RAID bdev r0: File exists", E.SpdkExists),
        ("bdev_raid_add_base_bdev", -22, "Failed to add base bdev M1 to RAID bdev r1: Invalid argument", E.SpdkInvalid),
        ("bdev_raid_delete", -19, "raid bdev r1 not found", E.SpdkNotFound),
        ("bdev_raid_get_bdevs", -32700, "spdk_json_decode_object failed", E.SpdkDecodeError),
        # lvol: errno codes, or -32602/-32603 with the errno's text
        ("bdev_lvol_create", -32602, "No space left on device", E.SpdkNoSpace),
        ("bdev_lvol_resize", -32602, "No space left on device", E.SpdkNoSpace),
        ("bdev_lvol_rename", -32602, "File exists", E.SpdkExists),
        ("bdev_lvol_snapshot", -32602, "File exists", E.SpdkExists),
        ("bdev_lvol_clone", -32602, "Invalid argument", E.SpdkInvalid),
        ("bdev_lvol_create_lvstore", -32602, "Input/output error", E.SpdkIoError),
        ("bdev_lvol_create_lvstore", -32602, "Operation not permitted", E.SpdkBusy),
        ("bdev_lvol_create_lvstore", -1, "Operation not permitted", E.SpdkBusy),
        ("bdev_lvol_delete", -32603, "Operation not permitted", E.SpdkBusy),
        ("bdev_lvol_delete", -19, "No such device", E.SpdkNotFound),
        ("bdev_lvol_create", -32603, "spdk_json_decode_object failed", E.SpdkDecodeError),
        # nvmf: -32602 for nearly everything, -32603 for the rest (meaning unknown)
        ("nvmf_subsystem_add_ns", -32602, "Invalid parameters", E.SpdkInvalid),
        ("nvmf_get_subsystems", -19, "No such device", E.SpdkNotFound),
        ("nvmf_create_subsystem", -32603, "Unable to create subsystem nqn.2016-06.io.spdk:cnode1", E.SpdkRpcError),
        ("nvmf_create_transport", -32603, "Transport type 'TCP' already exists", E.SpdkRpcError),
        ("nvmf_subsystem_listener_set_ana_state", -32603, "error setting ANA state: -22", E.SpdkRpcError),
        # iscsi: -32602, errno text in some messages, -2 for an unknown target node
        ("iscsi_create_target_node", -32602, "Invalid parameters", E.SpdkInvalid),
        ("iscsi_create_auth_group", -32602, "Could not add auth group (1), File exists", E.SpdkExists),
        (
            "iscsi_auth_group_remove_secret",
            -32602,
            "Could not delete secret from CHAP group (2), No such device",
            E.SpdkNotFound,
        ),
        ("iscsi_delete_auth_group", -32602, "Could not find auth group (1)", E.SpdkInvalid),
        ("iscsi_delete_target_node", -2, "No such file or directory", E.SpdkNotFound),
        # generic JSON-RPC
        ("no_such_method", -32601, "Method not found", E.SpdkMethodNotFound),
        ("spdk_get_version", -32602, "spdk_get_version method requires no parameters", E.SpdkInvalid),
        ("notify_get_notifications", -32602, "Invalid argument", E.SpdkInvalid),
        ("framework_get_config", -32602, "Subsystem 'nope' not found", E.SpdkInvalid),
        ("anything", -32600, "Invalid request", E.SpdkInvalid),
        ("anything", -12345, "odd", E.SpdkRpcError),
    ],
)
def test_error_table(method: str, code: int, message: str, kind: type[E.SpdkRpcError]) -> None:
    assert E.error_kind(method, code, message) is kind
    made = E.rpc_error(method, {"name": "x"}, {"code": code, "message": message})
    assert type(made) is kind
    assert isinstance(made, E.SpdkRpcError)
    assert (made.code, made.message, made.method, made.params) == (code, message, method, {"name": "x"})


def test_message_only_consulted_for_families_that_use_it() -> None:
    # raid puts the errno in the code; its message text never changes the meaning
    assert E.error_kind("bdev_raid_create", -32602, "File exists") is E.SpdkInvalid
    assert E.error_kind("bdev_lvol_create", -32602, "File exists") is E.SpdkExists
    # the text must end the message, exactly
    assert E.errno_in_message("File exists") == "EEXIST"
    assert E.errno_in_message("x: File exists") == "EEXIST"
    assert E.errno_in_message("File exists already") is None
    assert E.errno_in_message("NoFile exists") is None


@pytest.mark.parametrize(
    ("method", "family"),
    [
        ("bdev_lvol_create", "lvol"),
        ("bdev_raid_create", "raid"),
        ("bdev_nvme_attach_controller", "bdev"),
        ("bdev_malloc_create", "bdev"),
        ("nvmf_create_subsystem", "nvmf"),
        ("iscsi_get_target_nodes", "iscsi"),
        ("framework_get_config", "app"),
        ("sim_bdev_fail", "sim"),
        ("thread_get_stats", "other"),
    ],
)
def test_method_family(method: str, family: str) -> None:
    assert E.method_family(method) == family


def test_decode_error_is_invalid_and_tree_shape() -> None:
    assert issubclass(E.SpdkDecodeError, E.SpdkInvalid)
    for kind in (
        E.SpdkNotFound,
        E.SpdkExists,
        E.SpdkBusy,
        E.SpdkAlready,
        E.SpdkNoSpace,
        E.SpdkTimedOut,
        E.SpdkMethodNotFound,
        E.SpdkIoError,
    ):
        assert issubclass(kind, E.SpdkRpcError)
    for transport_kind in (E.SpdkTimeout, E.SpdkConnectionLost, E.SpdkConnectError, E.SpdkProtocolError):
        assert issubclass(transport_kind, E.SpdkTransportError)
        assert not issubclass(transport_kind, E.SpdkRpcError)
    assert issubclass(E.SpdkProtocolError, E.SpdkConnectionLost)


def test_params_are_deep_copied_and_error_pickles() -> None:
    params = {"base_bdevs": ["M0", "M1"]}
    e = E.SpdkExists(-17, "File exists", None, "bdev_raid_create", params)
    params["base_bdevs"].append("M2")
    assert e.params == {"base_bdevs": ["M0", "M1"]}
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is E.SpdkExists
    assert (back.code, back.message, back.method, back.params) == (e.code, e.message, e.method, e.params)
    assert str(e) == "bdev_raid_create: File exists (code -17)"


@pytest.mark.parametrize(
    "error",
    [
        "oops",
        {"message": "no code"},
        {"code": "1", "message": "x"},
        {"code": True, "message": "x"},
        {"code": 1, "message": 2},
    ],
)
def test_malformed_error_object_is_a_protocol_error(error: object) -> None:
    assert isinstance(E.rpc_error("m", None, error), E.SpdkProtocolError)
