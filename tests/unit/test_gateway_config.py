"""Settings: defaults, overrides, and one-line errors naming the key (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gateway_harness import run_to_exit

from fedmsg_gateway.config import Config, load


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return str(path)


def test_defaults(tmp_path: Path) -> None:
    config = load(_write(tmp_path, 'endpoints = ["tcp://bus.example.org:3000"]\n'))
    assert config == Config(endpoints=("tcp://bus.example.org:3000",))
    assert config.binds == ("tcp://*:9940",)
    assert (config.send_hwm, config.receive_hwm) == (160000, 160000)
    assert (config.tcp_keepalive, config.tcp_keepalive_idle) == (True, 60)
    assert (config.tcp_keepalive_interval, config.tcp_keepalive_count) == (5, 3)
    assert (config.reconnect_interval_ms, config.reconnect_interval_max_ms) == (100, 1000)
    assert config.listen_backlog == 4096
    assert config.metrics == "127.0.0.1:9941"
    assert (config.health, config.io_threads) == ("", 1)


def test_every_key_from_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
endpoints = ["tcp://10.0.0.1:3000", "ipc:///run/bus.sock"]
binds = ["tcp://*:9940", "tcp://192.0.2.1:9941", "ipc:///run/gw.sock"]
send_hwm = 0
receive_hwm = 5000
tcp_keepalive = false
tcp_keepalive_idle = 30
tcp_keepalive_interval = 2
tcp_keepalive_count = 9
reconnect_interval_ms = 250
reconnect_interval_max_ms = 0
listen_backlog = 512
metrics = ""
health = "*:9950"
io_threads = 3
""",
    )
    assert load(path) == Config(
        endpoints=("tcp://10.0.0.1:3000", "ipc:///run/bus.sock"),
        binds=("tcp://*:9940", "tcp://192.0.2.1:9941", "ipc:///run/gw.sock"),
        send_hwm=0,
        receive_hwm=5000,
        tcp_keepalive=False,
        tcp_keepalive_idle=30,
        tcp_keepalive_interval=2,
        tcp_keepalive_count=9,
        reconnect_interval_ms=250,
        reconnect_interval_max_ms=0,
        listen_backlog=512,
        metrics="",
        health="*:9950",
        io_threads=3,
    )


def test_flags_override_file(tmp_path: Path) -> None:
    path = _write(tmp_path, 'endpoints = ["tcp://a:1"]\nbinds = ["tcp://*:2"]\nsend_hwm = 5\n')
    config = load(
        path, endpoints=["tcp://b:1", "tcp://c:1"], binds=["tcp://127.0.0.1:3"], send_hwm="7", metrics=""
    )
    assert config.endpoints == ("tcp://b:1", "tcp://c:1")
    assert config.binds == ("tcp://127.0.0.1:3",)
    assert (config.send_hwm, config.metrics) == (7, "")


def _fails(args: list[str]) -> str:
    """Run the daemon expecting a configuration error; return its only stderr line."""
    result = run_to_exit("fedmsg_gateway", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fedmsg-gateway: ")
    return lines[0]


ENDPOINT = 'endpoints = ["tcp://127.0.0.1:3000"]\n'


@pytest.mark.parametrize(
    ("text", "key", "detail"),
    [
        (ENDPOINT + "colour = 1\n", "colour", "unknown setting"),
        (ENDPOINT + 'send_hwm = "lots"\n', "send_hwm", "expected an integer, got 'lots'"),
        (ENDPOINT + "receive_hwm = true\n", "receive_hwm", "expected an integer"),
        (ENDPOINT + "send_hwm = -1\n", "send_hwm", ">= 0"),
        (ENDPOINT + "tcp_keepalive = 1\n", "tcp_keepalive", "true or false"),
        (ENDPOINT + "tcp_keepalive_idle = 0\n", "tcp_keepalive_idle", ">= 1"),
        (ENDPOINT + "tcp_keepalive_interval = 1.5\n", "tcp_keepalive_interval", "integer"),
        (ENDPOINT + 'tcp_keepalive_count = "3"\n', "tcp_keepalive_count", "integer"),
        (ENDPOINT + "reconnect_interval_ms = 0\n", "reconnect_interval_ms", ">= 1"),
        (ENDPOINT + "listen_backlog = 0\n", "listen_backlog", ">= 1"),
        (
            ENDPOINT + "reconnect_interval_max_ms = 50\n",
            "reconnect_interval_max_ms",
            ">= reconnect_interval_ms",
        ),
        (ENDPOINT + 'metrics = "localhost"\n', "metrics", "HOST:PORT"),
        (ENDPOINT + 'metrics = "127.0.0.1:0"\n', "metrics", "1-65535"),
        (ENDPOINT + "metrics = 9941\n", "metrics", "HOST:PORT"),
        (ENDPOINT + "health = 9950\n", "health", "HOST:PORT or *:PORT"),
        (ENDPOINT + 'health = "9950"\n', "health", "HOST:PORT"),
        (ENDPOINT + 'health = "*:70000"\n', "health", "1-65535"),
        (ENDPOINT + 'health = "*:9941"\n', "health", "overlaps metrics ('127.0.0.1:9941')"),
        (ENDPOINT + 'metrics = "192.0.2.1:9950"\nhealth = "192.0.2.1:9950"\n', "health", "overlaps"),
        (ENDPOINT + "io_threads = 0\n", "io_threads", ">= 1"),
        ("", "endpoints", "at least one endpoint"),
        ("endpoints = []\n", "endpoints", "at least one endpoint"),
        ('endpoints = "tcp://127.0.0.1:3000"\n', "endpoints", "list of strings"),
        ('endpoints = ["http://bus:80"]\n', "endpoints", "tcp://HOST:PORT"),
        ('endpoints = ["tcp://bus"]\n', "endpoints", "tcp://HOST:PORT"),
        ('endpoints = ["tcp://*:3000"]\n', "endpoints", "tcp://HOST:PORT"),
        ('endpoints = ["tcp://bus:70000"]\n', "endpoints", "1-65535"),
        ('endpoints = ["ipc://"]\n', "endpoints", "ipc://PATH"),
        ('endpoints = ["tcp://a:1", "tcp://a:1"]\n', "endpoints", "duplicate"),
        (ENDPOINT + "binds = []\n", "binds", "at least one bind"),
        (ENDPOINT + 'binds = ["tcp://:9940"]\n', "binds", "tcp://*:PORT"),
        (ENDPOINT + 'binds = ["tcp://*:0"]\n', "binds", "1-65535"),
        (ENDPOINT + 'binds = ["udp://*:9940"]\n', "binds", "tcp://HOST:PORT"),
    ],
)
def test_bad_file_names_file_and_key(tmp_path: Path, text: str, key: str, detail: str) -> None:
    path = _write(tmp_path, text)
    line = _fails(["--config", path])
    assert line.startswith(f"fedmsg-gateway: {path}: {key}: ")
    assert detail in line


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "endpoints = [\n")
    assert _fails(["--config", path]).startswith(f"fedmsg-gateway: {path}: invalid TOML")


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    path = str(tmp_path / "missing.toml")
    assert _fails(["--config", path]).startswith(f"fedmsg-gateway: {path}: cannot read")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "endpoints: at least one endpoint"),
        (["--endpoint", "tcp://bus"], "endpoints: expected tcp://HOST:PORT"),
        (["--endpoint", "tcp://bus:1", "--bind", "tcp://bus"], "binds: expected"),
        (["--endpoint", "tcp://bus:1", "--hwm", "lots"], "--hwm: expected an integer, got 'lots'"),
        (["--endpoint", "tcp://bus:1", "--metrics", "nowhere"], "metrics: expected HOST:PORT"),
        (["--endpoint", "tcp://bus:1", "--health", "nowhere"], "health: expected HOST:PORT"),
        (["--endpoint", "tcp://bus:1", "--colour"], "unrecognized arguments: --colour"),
    ],
)
def test_bad_flags(args: list[str], expected: str) -> None:
    assert expected in _fails(args)


def test_check_config_validates_without_starting(tmp_path: Path) -> None:
    """--check-config is the Ansible template's validate command: 0 for a good file, 2 for a bad one."""
    good = _write(tmp_path, 'endpoints = ["tcp://127.0.0.1:3000"]\nbinds = ["tcp://127.0.0.1:1"]\n')
    result = run_to_exit("fedmsg_gateway", "--check-config", "--config", good)
    assert (result.returncode, result.stderr) == (0, "")
    bad = _write(tmp_path, 'endpoints = ["tcp://127.0.0.1:3000"]\nsend_hwm = "x"\n')
    assert "send_hwm" in _fails(["--check-config", "--config", bad])
