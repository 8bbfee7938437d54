"""Engine API fidelity through the docker CLI and docker-py, written from Docker's documented behaviour:
filters on every list and prune endpoint (and a 400 for an unknown key), ``system df``, single-image
save, ``docker update --restart``, ``--group-add``, the validation of runtimes, log drivers and volume
drivers, swarm endpoints on a node in no swarm, exec streams, unique generated names under
concurrency, and the request checks the issue found missing."""

from __future__ import annotations

import io
import json
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor

import docker as dockerpy_module
import httpx
import pytest

from tests.helpers.waiting import wait_for

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.integration,
    pytest.mark.requires_docker_cli,
]


def ok(result) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def fails(result) -> str:
    assert result.returncode != 0, result.stdout.decode()
    return result.stderr.decode()


@pytest.fixture(scope="module")
def api(daemon):
    with httpx.Client(
        transport=httpx.HTTPTransport(uds=str(daemon.socket)), base_url="http://dockyard", timeout=60
    ) as client:
        yield client


# -- filters ----------------------------------------------------------------------------------------


def test_unknown_filter_keys_are_refused_everywhere(daemon, api):
    for command in (("images",), ("ps",), ("volume", "ls"), ("network", "ls")):
        assert "Invalid filter 'bogus'" in fails(daemon.docker(*command, "--filter", "bogus=1"))
    for path in ("/containers/json", "/images/json", "/volumes", "/networks", "/events", "/plugins"):
        r = api.get("/v1.41" + path, params={"filters": json.dumps({"bogus": ["1"]}), "until": "1"})
        assert (r.status_code, r.json()["message"]) == (400, "Invalid filter 'bogus'"), path
    for path in ("/containers/prune", "/images/prune", "/volumes/prune", "/networks/prune", "/build/prune"):
        r = api.post("/v1.41" + path, params={"filters": json.dumps({"bogus": {"1": True}})})
        assert (r.status_code, r.json()["message"]) == (400, "Invalid filter 'bogus'"), path


def test_image_filters_and_the_dangling_cleanup(daemon, dockerpy):
    """``docker rmi $(docker images -q -f dangling=true)`` removes only the dangling images."""
    base = ok(daemon.docker("images", "-q", "busybox")).strip()
    ok(daemon.docker("run", "--name", "img-src", "busybox", "sh", "-c", "echo 1 > /one"))
    ok(daemon.docker("commit", "--change", "LABEL team=blue", "img-src", "labelled:1"))
    ok(daemon.docker("commit", "img-src", "dangler:1"))
    dangling = ok(daemon.docker("images", "-q", "--no-trunc", "dangler:1")).strip()
    ok(daemon.docker("tag", "busybox", "dangler:1"))  # moves the tag: the committed image dangles
    listed = ok(daemon.docker("images", "-q", "--no-trunc", "--filter", "dangling=true")).split()
    assert listed == [dangling]
    assert base not in " ".join(listed)
    assert [t for i in dockerpy.images.list(filters={"label": "team=blue"}) for t in i.tags] == ["labelled:1"]
    assert [t for i in dockerpy.images.list(filters={"label": "team"}) for t in i.tags] == ["labelled:1"]
    assert dockerpy.images.list(filters={"label": "team=red"}) == []
    assert ok(
        daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=label*")
    ).split() == ["labelled:1"]
    since = ok(daemon.docker("images", "--format", "{{.Repository}}", "--filter", "since=busybox")).split()
    assert "labelled" in since and "busybox" not in since
    assert (
        "labelled"
        not in ok(daemon.docker("images", "--format", "{{.Repository}}", "--filter", "before=labelled:1")).split()
    )
    assert "Invalid filter 'dangling=maybe'" in fails(daemon.docker("images", "--filter", "dangling=maybe"))
    ok(daemon.docker("rm", "img-src"))
    ok(daemon.docker("rmi", *listed))
    assert ok(daemon.docker("images", "-q", "busybox")).strip() == base
    assert ok(daemon.docker("images", "-q", "labelled:1")).strip()


def test_container_filters(daemon, dockerpy):
    web = dockerpy.containers.run(
        "busybox",
        "sleep 300",
        name="flt-web-1",
        labels={"tier": "front"},
        detach=True,
        ports={"80/tcp": None},
        volumes={"flt-data": {"bind": "/data"}},
    )
    done = dockerpy.containers.run("busybox", "sh -c 'exit 3'", name="flt-done", labels={"tier": "back"}, detach=True)
    done.wait()
    created = dockerpy.containers.create("busybox", "true", name="flt-new")

    def names(**filters) -> set[str]:
        return {c.name for c in dockerpy.containers.list(all=True, filters=filters) if c.name.startswith("flt-")}

    assert names(name="web") == {"flt-web-1"}  # a substring (a regular expression, as in Docker)
    assert names(name="^/flt-w") == {"flt-web-1"}
    assert names(label="tier") == {"flt-web-1", "flt-done"}
    assert names(label="tier=back") == {"flt-done"}
    assert names(status="exited") == {"flt-done"}
    assert names(status="created") == {"flt-new"}
    assert names(exited=3) == {"flt-done"}
    assert names(id=web.id[:10]) == {"flt-web-1"}
    assert names(volume="flt-data") == {"flt-web-1"} == names(volume="/data")
    assert names(expose="80") == {"flt-web-1"}
    web.reload()
    assert names(publish=web.ports["80/tcp"][0]["HostPort"]) == {"flt-web-1"}
    assert names(network="bridge") == {"flt-web-1", "flt-done", "flt-new"}
    assert names(health="none") == {"flt-web-1", "flt-done", "flt-new"}
    assert names(**{"is-task": "true"}) == set()
    assert names(before="flt-new") == {"flt-web-1", "flt-done"}
    assert names(since="flt-web-1") == {"flt-done", "flt-new"}
    # ps without -a shows running containers only, but a status filter widens the choice
    assert "flt-done" not in ok(daemon.docker("ps", "--format", "{{.Names}}"))
    assert ok(
        daemon.docker("ps", "--filter", "status=exited", "--filter", "name=flt-", "--format", "{{.Names}}")
    ).split() == ["flt-done"]
    # ancestor: the image and everything built on it
    ok(daemon.docker("commit", "flt-done", "flt-child:1"))
    child = dockerpy.containers.create("flt-child:1", "true", name="flt-from-child")
    assert names(ancestor="busybox") == {"flt-web-1", "flt-done", "flt-new", "flt-from-child"}
    assert names(ancestor="flt-child:1") == {"flt-from-child"}
    assert "Invalid filter 'status=sleepy'" in fails(daemon.docker("ps", "--filter", "status=sleepy"))
    for c in (web, done, created, child):
        c.remove(force=True)


def test_volume_and_network_filters_and_prunes(daemon, dockerpy):
    dockerpy.volumes.create("vf-keep", labels={"keep": "yes"})
    dockerpy.volumes.create("vf-temp", labels={"scratch": ""})
    used = dockerpy.containers.create("busybox", "true", volumes={"vf-used": {"bind": "/x"}})
    names = lambda **f: {v.name for v in dockerpy.volumes.list(filters=f) if v.name.startswith("vf-")}  # noqa: E731
    assert names(name="vf-k") == {"vf-keep"}
    assert names(label="keep=yes") == {"vf-keep"}
    assert names(dangling=True) == {"vf-keep", "vf-temp"}
    assert names(dangling=False) == {"vf-used"}
    assert names(driver="local") == {"vf-keep", "vf-temp", "vf-used"}
    report = dockerpy.volumes.prune(filters={"label!": "keep"})
    assert "vf-temp" in report["VolumesDeleted"] and "vf-keep" not in report["VolumesDeleted"]
    assert names() == {"vf-keep", "vf-used"}
    used.remove()

    dockerpy.networks.create("nf-a", labels={"env": "test"})
    dockerpy.networks.create("nf-b")
    net_names = lambda **f: {n.name for n in dockerpy.networks.list(filters=f)}  # noqa: E731
    assert net_names(label="env=test") == {"nf-a"}
    assert net_names(name="nf-") == {"nf-a", "nf-b"}
    assert net_names(type="builtin") == {"bridge", "host", "none"}
    assert {"nf-a", "nf-b"} <= net_names(type="custom", driver="bridge")
    assert net_names(scope="local") >= {"nf-a", "bridge"}
    assert {"nf-a", "nf-b"} <= net_names(dangling=True)
    assert "bridge" not in net_names(dangling=True)
    nf_b = dockerpy.networks.get("nf-b")
    assert net_names(id=nf_b.id[:12]) == {"nf-b"}
    deleted = dockerpy.networks.prune(filters={"label": "env=test"})["NetworksDeleted"]
    assert deleted == ["nf-a"]
    assert dockerpy.networks.prune(filters={"until": "1h"})["NetworksDeleted"] in ([], None)  # made just now
    assert "nf-b" in dockerpy.networks.prune()["NetworksDeleted"]


def test_container_and_image_prune(daemon, dockerpy):
    keep = dockerpy.containers.run("busybox", "true", labels={"keep": "1"}, detach=True)
    gone = dockerpy.containers.run("busybox", "true", detach=True)
    running = dockerpy.containers.run("busybox", "sleep 300", detach=True)
    keep.wait(), gone.wait()
    report = dockerpy.containers.prune(filters={"label!": "keep"})
    assert gone.id in report["ContainersDeleted"]
    assert keep.id not in report["ContainersDeleted"] and running.id not in report["ContainersDeleted"]
    assert "Total reclaimed space" in ok(daemon.docker("container", "prune", "-f", "--filter", "label=keep"))
    with pytest.raises(dockerpy_module.errors.NotFound):
        dockerpy.containers.get(keep.id)
    running.remove(force=True)
    ok(daemon.docker("run", "--name", "prune-src", "busybox", "true"))
    ok(daemon.docker("commit", "prune-src", "prunable:1"))
    ok(daemon.docker("rm", "prune-src"))
    holder = dockerpy.containers.create("busybox", "true")  # an image a container uses stays
    report = dockerpy.images.prune(filters={"dangling": False})
    assert {"Untagged": "prunable:1"} in report["ImagesDeleted"]
    assert any("Deleted" in line for line in report["ImagesDeleted"])
    assert "busybox:latest" in [t for i in dockerpy.images.list() for t in i.tags]
    holder.remove()


# -- system df, save, update, groups ----------------------------------------------------------


def test_system_df(daemon, dockerpy):
    c = dockerpy.containers.run(
        "busybox", "sh -c 'head -c 100000 /dev/zero > /big'", detach=True, volumes={"df-vol": {"bind": "/v"}}
    )
    c.wait()
    usage = dockerpy.df()
    assert usage["LayersSize"] > 1_000_000
    busybox = next(i for i in usage["Images"] if "busybox:latest" in i["RepoTags"])
    assert busybox["Containers"] >= 1 and busybox["SharedSize"] >= 0
    mine = next(x for x in usage["Containers"] if x["Id"] == c.id)
    assert mine["SizeRw"] >= 100000
    volume = next(v for v in usage["Volumes"] if v["Name"] == "df-vol")
    assert volume["UsageData"]["RefCount"] == 1 and volume["UsageData"]["Size"] >= 0
    assert usage["BuildCache"] == []
    text = ok(daemon.docker("system", "df", "-v"))
    assert "Images space usage:" in text and "df-vol" in text and c.id[:12] in text
    assert ok(daemon.docker("system", "df")).splitlines()[0].split()[:2] == ["TYPE", "TOTAL"]
    c.remove(v=True)


def test_single_image_save(daemon, dockerpy):
    raw = b"".join(dockerpy.images.get("busybox").save(named=True))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["busybox:latest"]


def test_update_restart_policy(daemon, dockerpy):
    c = dockerpy.containers.create("busybox", "true", name="upd-restart")
    ok(daemon.docker("update", "--restart", "on-failure:3", "upd-restart"))
    c.reload()
    assert c.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    c.update(restart_policy={"Name": "always"})
    c.reload()
    assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    auto = dockerpy.containers.create("busybox", "true", auto_remove=True)
    assert "AutoRemove" in fails(daemon.docker("update", "--restart", "always", auto.id))
    for x in (c, auto):
        x.remove(force=True)


def test_group_add(daemon, dockerpy):
    assert ok(
        daemon.docker("run", "--rm", "--group-add", "1234", "--group-add", "nogroup", "busybox", "id", "-G")
    ).split() == ["0", "1234", "65534"]
    out = dockerpy.containers.run("busybox", "id -G", group_add=["4321"], remove=True)
    assert out.split() == [b"0", b"4321"]
    assert "Unable to find group nosuchgroup" in fails(
        daemon.docker("run", "--rm", "--group-add", "nosuchgroup", "busybox", "true")
    )


def test_runtime_log_driver_and_volume_driver_are_checked(daemon, dockerpy):
    assert "Unknown runtime specified foo" in fails(daemon.docker("run", "--rm", "--runtime", "foo", "busybox", "true"))
    assert "syslog" in fails(daemon.docker("run", "--rm", "--log-driver", "syslog", "busybox", "true"))
    assert 'plugin "foo" not found' in fails(
        daemon.docker("run", "--rm", "--volume-driver", "foo", "-v", "x:/x", "busybox", "true")
    )
    assert 'plugin "foo" not found' in fails(daemon.docker("volume", "create", "-d", "foo", "vd-x"))
    with pytest.raises(dockerpy_module.errors.APIError) as caught:
        dockerpy.containers.create("busybox", "true", cpu_period=100000)
    assert caught.value.status_code == 400 and "HostConfig.CpuPeriod" in caught.value.explanation


# -- swarm and plugins ------------------------------------------------------------------------


def test_swarm_endpoints_answer_as_a_node_in_no_swarm(daemon, dockerpy):
    with pytest.raises(dockerpy_module.errors.APIError) as caught:
        dockerpy.swarm.leave()
    assert caught.value.status_code == 503 and "This node is not part of a swarm" in str(caught.value)
    for call in (dockerpy.nodes.list, dockerpy.services.list, dockerpy.secrets.list, dockerpy.configs.list):
        with pytest.raises(dockerpy_module.errors.APIError) as caught:
            call()
        assert caught.value.status_code == 503 and "not a swarm manager" in str(caught.value)
    assert "This node is not a swarm manager" in fails(daemon.docker("node", "ls"))
    assert "swarm mode is not supported" in fails(daemon.docker("swarm", "init"))
    assert dockerpy.info()["Swarm"]["LocalNodeState"] == "inactive"
    assert dockerpy.plugins.list() == []


# -- exec streams -----------------------------------------------------------------------------


def test_exec_streams(daemon, dockerpy):
    c = dockerpy.containers.run("busybox", "sleep 300", detach=True, name="exec-streams")
    # a tty: raw bytes, as the terminal wrote them (no stdcopy header)
    assert c.exec_run("echo hi", tty=True).output == b"hi\r\n"
    # no tty: frames, demultiplexed by docker-py
    assert c.exec_run("sh -c 'echo out; echo err >&2'", demux=True).output == (b"out\n", b"err\n")
    # the start request decides the framing, as in Docker: a tty exec started without Tty is framed
    exec_id = dockerpy.api.exec_create(c.id, "echo framed", tty=True)["Id"]
    raw = dockerpy.api.exec_start(exec_id, tty=False)
    assert raw == b"framed\r\n"  # docker-py demuxes frames when tty=False: the header was there
    exec_id = dockerpy.api.exec_create(c.id, "echo unframed", tty=False)["Id"]
    assert dockerpy.api.exec_start(exec_id, tty=True) == b"unframed\n"
    # Detach: 200, the process runs on
    result = c.exec_run("sh -c 'sleep 0.2; touch /tmp/detached'", detach=True)
    assert result.exit_code is None
    assert wait_for(lambda: c.exec_run("test -e /tmp/detached").exit_code == 0, 10)
    # the raw socket (docker-py exec_start(socket=True)): stdin in, frames out
    sock = c.exec_run("cat", stdin=True, socket=True).output
    raw_sock = sock._sock
    raw_sock.sendall(b"hello\n")
    raw_sock.shutdown(1)
    data = b""
    while len(data) < 14:
        chunk = raw_sock.recv(100)
        if not chunk:
            break
        data += chunk
    assert data == b"\x01\x00\x00\x00\x00\x00\x00\x06hello\n"
    sock.close()
    assert "Invalid detach keys" in fails(daemon.docker("exec", "--detach-keys", "bogus-key", "exec-streams", "true"))
    c.remove(force=True)


# -- names, stop timeout, requests ----------------------------------------------------------


def test_generated_names_are_unique_under_concurrency(daemon):
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: daemon.docker("run", "--rm", "busybox", "true", timeout=180), range(50)))
    failures = [r.stderr.decode() for r in results if r.returncode != 0]
    assert failures == []


def test_stop_timeout_of_the_container(daemon, dockerpy):
    ok(
        daemon.docker(
            "run",
            "-d",
            "--name",
            "stop-timeout",
            "--stop-timeout",
            "1",
            "busybox",
            "sh",
            "-c",
            "trap '' TERM; sleep 300 & wait",
        )
    )
    c = dockerpy.containers.get("stop-timeout")
    assert c.attrs["Config"]["StopTimeout"] == 1
    ok(daemon.docker("stop", "stop-timeout", timeout=20))  # TERM is ignored: killed after 1s, not 10
    c.reload()
    assert c.attrs["State"]["ExitCode"] == 137
    c.remove()


def test_dns_search_and_options(daemon):
    text = ok(
        daemon.docker(
            "run",
            "--rm",
            "--dns-search",
            "example.com",
            "--dns-search",
            "corp.example",
            "--dns-option",
            "ndots:3",
            "--dns-option",
            "timeout:2",
            "busybox",
            "cat",
            "/etc/resolv.conf",
        )
    )
    assert "search example.com corp.example" in text.splitlines()
    assert "options ndots:3 timeout:2" in text.splitlines()


def test_mounts(daemon, dockerpy, tmp_path):
    (tmp_path / "hello").write_text("from the host\n")
    out = ok(
        daemon.docker(
            "run",
            "--rm",
            "--mount",
            f"type=bind,src={tmp_path},dst=/mnt/h,readonly",
            "busybox",
            "sh",
            "-c",
            "cat /mnt/h/hello; touch /mnt/h/x 2>&1 || true",
        )
    )
    assert "from the host" in out and "Read-only file system" in out
    ok(
        daemon.docker(
            "run", "--rm", "--mount", "type=volume,src=mnt-vol,dst=/data", "busybox", "sh", "-c", "echo kept > /data/f"
        )
    )
    assert ok(daemon.docker("run", "--rm", "-v", "mnt-vol:/d", "busybox", "cat", "/d/f")) == "kept\n"
    assert "bind source path does not exist" in fails(
        daemon.docker("run", "--rm", "--mount", "type=bind,src=/no/such/dir,dst=/x", "busybox", "true")
    )
    assert "Duplicate mount point" in fails(
        daemon.docker("run", "--rm", "-v", "/tmp:/x", "--mount", "type=volume,dst=/x", "busybox", "true")
    )
    assert "Mounts.Type='tmpfs'" in fails(
        daemon.docker("run", "--rm", "--mount", "type=tmpfs,dst=/t", "busybox", "true")
    )


def test_console_size(daemon, api):
    cid = api.post(
        "/v1.41/containers/create",
        json={"Image": "busybox", "Cmd": ["stty", "size"], "Tty": True, "HostConfig": {"ConsoleSize": [31, 97]}},
    ).json()["Id"]
    assert api.post(f"/v1.41/containers/{cid}/start").status_code == 204
    assert api.post(f"/v1.41/containers/{cid}/wait").json()["StatusCode"] == 0
    assert api.get(f"/v1.41/containers/{cid}/logs", params={"stdout": 1}).content.strip() == b"31 97"
    api.delete(f"/v1.41/containers/{cid}")


def test_request_checks(daemon, api):
    r = api.post("/v1.41/images/create", params={"fromSrc": "-", "repo": "Bad Repo!"}, content=b"x" * 1000)
    assert r.status_code == 400 and "invalid reference format" in r.json()["message"]
    cid = api.post("/v1.41/containers/create", json={"Image": "busybox", "Cmd": ["true"]}).json()["Id"]
    r = api.post(f"/v1.41/containers/{cid}/resize", params={"h": "tall", "w": "80"})
    assert r.status_code == 400 and "query parameter h" in r.json()["message"]
    nested = b"[" * 100000 + b"]" * 100000
    r = api.post("/v1.41/containers/create", content=nested, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    api.delete(f"/v1.41/containers/{cid}")
    assert api.get("/v1.41/_ping").text == "OK"


def test_event_filters(daemon, dockerpy):
    since = time.time() - 1
    dockerpy.networks.create("ev-net").remove()
    dockerpy.volumes.create("ev-vol").remove()
    ok(daemon.docker("tag", "busybox", "ev-image:1"))
    c = dockerpy.containers.create("busybox", "true", name="ev-ctr", labels={"ev": "yes"})
    c.remove()
    until = time.time() + 1

    def actions(*filters: str) -> list[str]:
        args = [x for f in filters for x in ("--filter", f)]
        text = ok(
            daemon.docker(
                "events",
                "--since",
                f"{since:.3f}",
                "--until",
                f"{until:.3f}",
                *args,
                "--format",
                "{{.Type}} {{.Action}}",
            )
        )
        return text.splitlines()

    assert actions("network=ev-net") == ["network create", "network destroy"]
    assert actions("type=volume", "volume=ev-vol") == ["volume create", "volume destroy"]
    assert actions("image=ev-image:1") == ["image tag"]
    assert actions("container=ev-ctr") == ["container create", "container destroy"]
    assert actions("label=ev=yes", "event=destroy") == ["container destroy"]
    assert actions("type=container", "label=ev=no") == []
    assert "Invalid filter 'bogus'" in fails(
        daemon.docker("events", "--since", "1", "--until", "2", "--filter", "bogus=1")
    )


def test_attach_over_a_websocket(daemon, dockerpy):
    """``GET /containers/{id}/attach/ws``: binary messages carrying the raw output, input from the client."""
    import asyncio

    import aiohttp

    c = dockerpy.containers.run("busybox", "sh -c 'echo ready; cat'", detach=True, stdin_open=True, name="ws-attach")
    assert wait_for(lambda: b"ready" in c.logs(), 10)

    async def talk() -> tuple[bytes, bytes]:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(daemon.socket))) as session:
            url = f"http://localhost/v1.41/containers/{c.id}/attach/ws?logs=1&stream=1"
            async with session.ws_connect(url) as ws:
                first = await asyncio.wait_for(ws.receive(), 10)
                await ws.send_bytes(b"echoed back\n")
                second = await asyncio.wait_for(ws.receive(), 10)
                assert first.type == second.type == aiohttp.WSMsgType.BINARY
                return first.data, second.data

    logs, echoed = asyncio.run(talk())
    assert logs == b"ready\n" and echoed == b"echoed back\n"  # no stdcopy header: raw, as Docker sends it
    c.remove(force=True)


def test_domainname(daemon):
    assert (
        ok(
            daemon.docker(
                "run", "--rm", "--domainname", "corp.example", "busybox", "cat", "/proc/sys/kernel/domainname"
            )
        )
        == "corp.example\n"
    )
