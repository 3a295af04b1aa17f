"""``--config FILE`` of the daemons: file under command line, over defaults; clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from spdkvirt.cli import agent_cmd, controller_cmd
from spdkvirt.cli.config_file import ConfigError, merge_config
from spdkvirt.cli.daemons import COMMON_OPTIONS
from spdkvirt.cli.main import build_parser, main


def parse(*argv: str) -> object:
    return build_parser().parse_args(list(argv))


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "c.yml"
    p.write_text(text)
    return str(p)


def test_agent_file_fills_and_command_line_wins(tmp_path: Path) -> None:
    cfg = write(tmp_path, "node_id: n1\nspdk_socket: /s\nstore: file:///x\naddress: 10.0.0.1\n"
                          "devices: [d0=/a, d1=/b]\nnvmf_port: 4421\nfence_url: ssh://root@h/s\n"
                          "ssh_identity: /k\nverbose: true\n")  # fmt: skip
    args = merge_config(parse("agent", "--config", cfg, "--address", "10.0.0.9"), (*agent_cmd.OPTIONS, *COMMON_OPTIONS))
    assert (args.node_id, args.address, args.nvmf_port) == ("n1", "10.0.0.9", 4421)
    assert args.device == ["d0=/a", "d1=/b"]
    assert (args.iscsi_port, args.lease_ttl, args.fence_method) == (3260, 2, "listeners")
    assert (args.ssh_identity, args.verbose, args.ssh_accept_new_host) == (["/k"], True, False)


def test_flags_alone_still_work() -> None:
    args = merge_config(parse("controller", "--store", "file:///x"), (*controller_cmd.OPTIONS, *COMMON_OPTIONS))
    assert args.store == "file:///x" and args.lease_ttl == 2 and args.api_socket is None


def test_controller_epoch_deadlines_from_file_and_flags(tmp_path: Path) -> None:
    cfg = write(tmp_path, "store: file:///x\nquiesce_deadline: 3\nhold_budget: 12.5\n")
    args = merge_config(parse("controller", "--config", cfg, "--remap-deadline", "6"),
                        (*controller_cmd.OPTIONS, *COMMON_OPTIONS))  # fmt: skip
    got = (args.quiesce_deadline, args.remap_deadline, args.resume_deadline, args.hold_budget)
    assert got == (3.0, 6.0, 5.0, 12.5)
    with pytest.raises(ConfigError, match="hold_budget must be a number of seconds"):
        merge_config(parse("controller", "--config", write(tmp_path, "store: s\nhold_budget: soon\n")),
                     (*controller_cmd.OPTIONS, *COMMON_OPTIONS))  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("node_idd: n1\n", "unknown option 'node_idd'"),
        ("node_id: n1\nspdk_socket: /s\nstore: s\naddress: a\nnvmf_port: x\n", "nvmf_port must be an integer"),
        ("node_id: n1\nspdk_socket: /s\nstore: s\n", "--address is required"),
        ("- a\n", "must hold a mapping"),
        ("node_id: [\n", "not valid YAML"),
        ("node_id: n\nspdk_socket: /s\nstore: s\naddress: a\nfence_method: reboot\n", "fence_method must be one of"),
    ],
)
def test_bad_files_are_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    cfg = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        merge_config(parse("agent", "--config", cfg), (*agent_cmd.OPTIONS, *COMMON_OPTIONS))


def test_command_exits_2_with_the_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["controller", "--config", str(tmp_path / "missing.yml")])
    assert e.value.code == 2
    assert "cannot read config file" in capsys.readouterr().err
