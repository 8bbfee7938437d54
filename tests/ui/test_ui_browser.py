"""The web UI in a real browser: pull with progress from a local registry, then run -> logs -> terminal ->
inspect -> processes -> stats -> stop -> rm, the events feed and the layer tree, with a screenshot of each step."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from tests.helpers.browser import Browser
from tests.helpers.daemon import TcpDaemon, busybox_rootfs_tar
from tests.helpers.registry import start_docker_registry
from tests.helpers.requirements import require

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.requires_chromium,
    pytest.mark.integration,
]


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory):
    require("docker_registry")
    server = start_docker_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


def api(daemon: TcpDaemon, path: str) -> object:
    with urllib.request.urlopen(daemon.url + "/v1.41" + path, timeout=30) as response:
        return json.loads(response.read())


def test_pull_with_progress_then_the_whole_container_lifecycle(
    ui_daemon: TcpDaemon, browser: Browser, local_registry
) -> None:
    d, b = ui_daemon, browser
    reference = f"{local_registry.host}/ui/busybox:1"
    # the image exists only in the registry: pushed from here, then removed here
    for argv in (["tag", "busybox:latest", reference], ["push", reference], ["rmi", reference, "busybox:latest"]):
        result = d.dockyard(*argv, timeout=120)
        assert result.returncode == 0, (argv, result.stderr.decode())
    assert api(d, "/images/json") == []

    # -- pull, with a progress bar
    b.driver.get(d.url + "/ui/#/images")
    b.wait(lambda: b.test_id("pull-ref"), what="the pull form")
    b.test_id("pull-ref").send_keys(reference)
    b.click("pull-submit")
    progress = b.wait(
        lambda: b.test_id("pull-progress").get_attribute("data-state") == "done" and b.test_id("pull-progress"),
        timeout=120,
        what="the pull to finish",
    )
    assert progress.get_attribute("aria-valuenow") == "100"
    bars = b.find_all(".layer-row progress")
    assert bars and all(int(bar.get_attribute("max")) > 0 for bar in bars)  # sizes came with the progress
    assert all(bar.get_attribute("value") == bar.get_attribute("max") for bar in bars)
    assert "Pull complete" in b.find(".pull").text
    assert "Downloaded newer image" in b.text("pull-log") or "Image is up to date" in b.text("pull-log")
    b.wait(lambda: reference in b.text("images"), what="the pulled image in the list")
    b.wait(lambda: b.find_all('[data-test="layer-tree"] .tree-node'), what="the layer tree")
    assert reference in b.test_id("layer-tree").text
    b.screenshot("01-pull-with-progress")

    # -- run from the dashboard
    b.driver.get(d.url + "/ui/#/")
    b.click("open-run")
    form = b.test_id("run-form")
    form.find_element("css selector", 'input[name="image"]').clear()
    form.find_element("css selector", 'input[name="image"]').send_keys(reference)
    form.find_element("css selector", 'input[name="name"]').send_keys("ui-web")
    form.find_element("css selector", 'input[name="command"]').send_keys(
        "sh -c 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done'"
    )
    form.find_element("css selector", 'textarea[name="env"]').send_keys("GREETING=from-the-ui")
    b.screenshot("02-run-form")
    b.click("run-submit")

    # -- the container's page: live logs
    b.wait(lambda: "#/containers/" in b.driver.current_url, what="the container page")
    container_id = b.driver.current_url.rsplit("/", 1)[1]
    assert b.wait(lambda: b.text("container-name"), what="the name") == "ui-web"
    b.wait(lambda: b.text("state") == "running", what="running")
    b.wait(lambda: "tick 3" in b.text("logs"), what="the first log lines")
    seen = len(re.findall(r"tick \d+", b.text("logs")))
    b.wait(lambda: len(re.findall(r"tick \d+", b.text("logs"))) >= seen + 5, what="more lines as they come (follow)")
    b.screenshot("03-live-logs")

    # -- a terminal over a websocket
    b.click("tab-terminal")
    b.wait(lambda: b.text("terminal-status") == "connected", what="the terminal to connect")
    b.wait(lambda: "#" in b.find(".xterm-rows").text, what="the shell prompt")
    b.find(".xterm-helper-textarea").send_keys("echo hello-$((6*7)) $GREETING\n")
    b.wait(lambda: "hello-42 from-the-ui" in b.find(".xterm-rows").text, what="the command's output in the terminal")
    b.screenshot("04-terminal")

    # -- inspect, processes, stats
    b.click("tab-inspect")
    b.wait(lambda: "Config:" in b.text("inspect"), what="the inspect tree")
    assert "GREETING=from-the-ui" not in b.text("inspect")  # collapsed below the second level
    b.find('[data-test="inspect"] details[data-key="Env"] > summary').click()
    b.wait(lambda: "GREETING=from-the-ui" in b.text("inspect"), what="Env unfolded")
    b.screenshot("05-inspect")
    b.click("tab-processes")
    rows = b.wait(lambda: b.text("processes"), what="the process list")
    assert "PID" in rows and "sleep" in rows or "sh" in rows
    b.screenshot("06-processes")
    b.click("tab-stats")
    b.wait(lambda: int(b.text("stats").split(" samples")[0].split()[-1]) >= 3, timeout=30, what="3 stats samples")
    assert b.find_all('[data-test="cpu-chart"] polyline') and b.find_all('[data-test="memory-chart"] polyline')
    b.screenshot("07-stats")

    # -- stop: the log stream ends, the state says so
    b.click("tab-logs")
    b.click("action-stop")
    b.wait(lambda: b.text("state") == "exited", timeout=60, what="exited")
    b.wait(lambda: b.find_all('[data-test="logs-ended"]'), what="the end of the log stream")
    assert api(d, f"/containers/{container_id}/json")["State"]["Status"] == "exited"
    b.screenshot("08-stopped")

    # -- rm: back on the dashboard, and gone
    b.click("action-rm")
    b.wait(lambda: b.driver.current_url.endswith("#/"), what="the dashboard")
    b.wait(lambda: b.find_all('[data-test="no-containers"]'), what="no containers listed")
    assert api(d, "/containers/json?all=1") == []

    # -- the events feed saw it all
    b.driver.get(d.url + "/ui/#/events")
    b.wait(lambda: "destroy" in b.text("events"), what="the destroy event")
    feed = b.text("events")
    for action in ("pull", "create", "start", "die", "destroy"):
        assert action in feed, action
    b.screenshot("09-events")


def test_images_tag_commit_and_rmi(ui_daemon: TcpDaemon, browser: Browser) -> None:
    d, b = ui_daemon, browser
    result = d.dockyard(
        "run", "-d", "--name", "ui-commit", "busybox:latest", "sh", "-c", "echo made > /made; sleep 600"
    )
    if result.returncode != 0:  # the first test removed busybox:latest; put it back
        assert d.dockyard("import", "-", "busybox:latest", input=busybox_rootfs_tar()).returncode == 0
        result = d.dockyard(
            "run", "-d", "--name", "ui-commit", "busybox:latest", "sh", "-c", "echo made > /made; sleep 600"
        )
    assert result.returncode == 0, result.stderr.decode()
    container_id = result.stdout.decode().strip()
    b.driver.get(f"{d.url}/ui/#/containers/{container_id}")
    b.wait(lambda: b.text("state") == "running", what="running")
    b.test_id("commit-ref").send_keys("ui/committed:1")
    b.click("commit")
    b.wait(lambda: "ui/committed:1" in b.text("committed"), what="the commit")
    b.screenshot("10-commit")

    b.driver.get(d.url + "/ui/#/images")
    row = b.wait(
        lambda: [r for r in b.find_all('[data-test="image-row"]') if "ui/committed:1" in r.text],
        what="the committed image",
    )[0]
    row.find_element("css selector", '[data-test="tag-ref"]').send_keys("ui/committed:2")
    row.find_element("css selector", '[data-test="tag"]').click()
    b.wait(lambda: "ui/committed:2" in b.text("images"), what="the new tag")
    tags = {t for image in api(d, "/images/json") for t in image["RepoTags"] or []}
    assert {"ui/committed:1", "ui/committed:2"} <= tags
    # the layer tree: the committed layer is a child of busybox's
    b.wait(lambda: "ui/committed:2" in b.test_id("layer-tree").text, what="the tree with the new tag")
    assert len(b.find_all('[data-test="layer-tree"] .tree-edge')) >= 1
    b.screenshot("11-tag-and-layer-tree")
    row = [r for r in b.find_all('[data-test="image-row"]') if "ui/committed:2" in r.text][0]
    buttons = row.find_elements("css selector", '[data-test="rmi"]')
    [button for button in buttons if "ui/committed:2" in button.text][0].click()
    b.wait(lambda: "ui/committed:2" not in b.text("images"), what="the tag removed")
    assert "ui/committed:2" not in {t for image in api(d, "/images/json") for t in image["RepoTags"] or []}


def test_the_ui_page_is_locked_down(ui_daemon: TcpDaemon) -> None:
    with urllib.request.urlopen(ui_daemon.url + "/ui/", timeout=30) as response:
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert b'<script type="importmap">' in response.read()
    for path in ("/ui/vendor/../../etc/passwd", "/ui/vendor/nope.js", "/ui/..%2f__init__.py", "/ui/nope.html"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(ui_daemon.url + path, timeout=30)
        assert caught.value.code == 404, path


def test_another_origin_is_refused_and_the_uis_own_is_not(ui_daemon: TcpDaemon) -> None:
    def create(origin: str) -> int:
        body = json.dumps({"Image": "busybox:latest", "Cmd": ["true"]}).encode()
        req = urllib.request.Request(
            ui_daemon.url + "/v1.41/containers/create",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Origin": origin},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert create("http://evil.example") == 403
    assert create(f"http://localhost:{ui_daemon.port}") == 403  # not the origin this request was made to
    assert create(ui_daemon.url) in (201, 404)  # the UI's own origin passes (404: no busybox in this daemon)


def test_docs_render_the_daemons_own_openapi(ui_daemon: TcpDaemon, browser: Browser) -> None:
    b = browser
    b.driver.get(ui_daemon.url + "/docs")
    b.wait(lambda: len(b.find_all(".opblock")) >= 40, what="the operations rendered by Swagger UI")
    text = b.find(".swagger-ui").text
    assert "dockyard Engine API" in text and "/containers/{id}/json" in text
    b.find(".opblock-summary-path[data-path='/containers/json']").click()
    b.wait(
        lambda: "ContainerSummary" in b.find(".swagger-ui").text or "Names" in b.find(".swagger-ui").text,
        what="the answer's schema",
    )
    b.screenshot("12-api-docs")
