"""The classic builder: one image per Dockerfile step, with a layer cache.

For each instruction of each stage (up to ``--target``) the builder prints
``Step n/m : <instruction>``, then either reuses a cached image (`` ---> Using
cache``) or makes one:

* RUN: an intermediate container from the current image (``Cmd`` = the shell
  form or the exec form, ``Entrypoint`` cleared, the build arguments in its
  environment), its output streamed, its exit code checked, its layer committed,
  the container removed;
* COPY / ADD / WORKDIR: a scratch layer on top of the current image's top
  layer, written through :mod:`dockyard.build.copier`, committed as a layer;
* everything else changes only the config: an image with an ``empty_layer``
  history entry and the parent's layers.

Images are recorded with their parent, as Docker's classic builder does (the
intermediate images ``docker images -a`` lists).
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import posixpath
import re
import shutil
import signal as signals
import struct
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard import ids, rootfs, transfer
from dockyard.build import copier
from dockyard.build.cache import BuildCache, from_sources, in_chain, step_key
from dockyard.build.context import Context
from dockyard.build.parser import Dockerfile, DockerfileError, Instruction, Stage, parse, parse_pairs
from dockyard.build.shell import ShellError, process_word, process_words
from dockyard.errors import DockyardError, InvalidParameter, NotFound
from dockyard.models.container import ContainerConfig, CreateRequest, HostConfig
from dockyard.models.image import ImageConfig

log = logging.getLogger(__name__)

__all__ = ["BuildError", "BuildOptions", "Builder", "Output"]

DEFAULT_SHELL = ["/bin/sh", "-c"]
#: usable without an ARG; never recorded in history nor in cache keys (as in Docker)
PREDEFINED_ARGS = {
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
}


class BuildError(DockyardError):
    """A step failed; ``code`` is the failed command's exit status when there is one."""

    status = 400

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class BuildOptions:
    tags: list[tuple[str, str]] = field(default_factory=list)
    dockerfile: str = "Dockerfile"
    quiet: bool = False
    no_cache: bool = False
    pull: bool = False
    rm: bool = True
    force_rm: bool = False
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    #: ``X-Registry-Config``: {server: {username, password, ...}} for pulling base images
    registry_config: dict[str, dict] = field(default_factory=dict)
    network_mode: str = "default"
    extra_hosts: list[str] = field(default_factory=list)
    #: images whose history may stand in for build steps (``--cache-from``)
    cache_from: list[str] = field(default_factory=list)
    memory: int = 0
    memory_swap: int = 0
    cpu_shares: int = 0
    cpuset_cpus: str = ""


class Output:
    """The build's JSON-message stream; in quiet mode text is kept back (shown only on failure)."""

    def __init__(self, send: Callable[[dict], Awaitable[None]], quiet: bool = False) -> None:
        self.send = send
        self.quiet = quiet
        self.held: list[str] = []

    async def stream(self, text: str) -> None:
        if self.quiet:
            self.held.append(text)
            return
        await self.send({"stream": text})

    async def message(self, message: dict) -> None:
        if not self.quiet:
            await self.send(message)

    async def flush_held(self) -> None:
        if self.held:
            await self.send({"stream": "".join(self.held)})
            self.held.clear()


@dataclass
class StageState:
    stage: Stage
    image_id: str | None = None
    config: ContainerConfig = field(default_factory=ContainerConfig)
    author: str | None = None
    args: dict[str, str | None] = field(default_factory=dict)  #: ARGs declared in this stage
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False


def _short(image_id: str | None) -> str:
    return ids.short(image_id) if image_id else ""


def _env_dict(env: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def _set_env(env: list[str] | None, key: str, value: str) -> list[str]:
    result = list(env or [])
    for index, item in enumerate(result):
        if item.partition("=")[0] == key:
            result[index] = f"{key}={value}"
            return result
    result.append(f"{key}={value}")
    return result


def _duration_ns(text: str, what: str) -> int:
    """Go's time.ParseDuration (h, m, s, ms, us, ns; decimals allowed)."""
    units = {"h": 3600e9, "m": 60e9, "s": 1e9, "ms": 1e6, "us": 1e3, "µs": 1e3, "ns": 1}
    if text in ("0", ""):
        return 0
    total = 0.0
    pos = 0
    for match in re.finditer(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)", text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * units[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise InvalidParameter(f"HEALTHCHECK: invalid duration for --{what}: {text!r}")
    return int(total)


def _check_signal(value: str) -> str:
    text = value.upper()
    if text.isdigit():
        return value
    name = text if text.startswith("SIG") else "SIG" + text
    if name not in signals.Signals.__members__ and not re.fullmatch(r"SIGRTM(IN|AX)([+-]\d+)?", name):
        raise InvalidParameter(f"Invalid signal: {value}")
    return value


def _ports(words: list[str]) -> list[str]:
    result = []
    for word in words:
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidParameter(f"EXPOSE: invalid proto: {proto}")
        if ":" in port:
            port = port.rsplit(":", 1)[1]
        low, sep, high = port.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise InvalidParameter(f"EXPOSE: invalid containerPort: {port}")
        start, end = int(low), int(high) if sep else int(low)
        if start > end or end > 65535:
            raise InvalidParameter(f"EXPOSE: invalid port range: {port}")
        result.extend(f"{p}/{proto}" for p in range(start, end + 1))
    return result


class Builder:
    def __init__(
        self, engine: Any, context: Context, options: BuildOptions, output: Output, cache: BuildCache, workdir: Path
    ) -> None:
        self.engine = engine
        self.images = engine.images
        self.containers = engine.containers
        self.storage = engine.storage
        self.context = context
        self.options = options
        self.out = output
        self.cache = cache
        self.workdir = workdir
        self.dockerfile: Dockerfile | None = None
        self.stages: list[StageState] = []
        self.meta_args: dict[str, str | None] = {}
        self.used_args: set[str] = set()
        self.step = 0
        self.total = 0
        self.live_containers: set[str] = set()
        self.live_layers: set[str] = set()
        self._sources: list[str] | None = None  # --cache-from images, resolved at the first probe

    # -- entry point -------------------------------------------------------------------
    def parse(self) -> Dockerfile:
        """Parse the Dockerfile and check ``--target``; raises before anything is printed."""
        self.dockerfile = parse(self.context.dockerfile)
        stages = self.dockerfile.stages
        if self.options.target:
            index = self.dockerfile.stage_index(self.options.target)
            if index is None:
                raise InvalidParameter(f"failed to reach build target {self.options.target} in Dockerfile")
            stages = stages[: index + 1]
        self.selected = stages
        self.total = len(self.dockerfile.meta_args) + sum(1 + len(s.commands) for s in stages)
        if self.options.labels:
            self.total += 1
        return self.dockerfile

    async def build(self) -> str:
        if self.dockerfile is None:
            self.parse()
        assert self.dockerfile is not None
        try:
            for instr in self.dockerfile.meta_args:
                await self._step_line(instr)
                self._meta_arg(instr)
            state: StageState | None = None
            for number, stage in enumerate(self.selected):
                state = StageState(stage=stage)
                self.stages.append(state)
                await self._step_line(stage.source)
                await self._from(state)
                commands = list(stage.commands)
                if self.options.labels and number == len(self.selected) - 1:
                    text = " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in self.options.labels.items())
                    commands.append(
                        Instruction(
                            keyword="LABEL",
                            rest=text,
                            line=0,
                            original=f"LABEL {text}",
                            flags={"__preset__": json.dumps(self.options.labels)},
                        )
                    )
                for instr in commands:
                    await self._step_line(instr)
                    await self._dispatch(instr, state)
            assert state is not None
            if state.image_id is None:
                raise BuildError("No image was generated. Is your Dockerfile empty?")
            unused = sorted(a for a in self.options.build_args if a not in self.used_args and a not in PREDEFINED_ARGS)
            if unused:
                await self.out.stream(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
            return state.image_id
        finally:
            await self._cleanup()

    async def _cleanup(self) -> None:
        for cid in list(self.live_containers):
            try:
                await self.containers.remove(cid, force=True)
            except DockyardError as exc:
                log.warning("removing intermediate container %s: %s", ids.short(cid), exc)
        self.live_containers.clear()
        for layer in list(self.live_layers):
            await asyncio.to_thread(self._drop_layer, layer)

    def _drop_layer(self, layer: str) -> None:
        try:
            if self.storage.exists(layer):
                self.storage.remove_layer(layer)
        except DockyardError as exc:
            log.warning("removing build layer %s: %s", ids.short(layer), exc)
        self.live_layers.discard(layer)

    async def _step_line(self, instr: Instruction) -> None:
        self.step += 1
        await self.out.stream(f"Step {self.step}/{self.total} : {instr.original}")
        await self.out.stream("\n")

    # -- substitution ------------------------------------------------------------------
    def _sub_env(self, state: StageState) -> dict[str, str]:
        env = {k: v for k, v in state.args.items() if v is not None}
        env.update(_env_dict(state.config.env))
        return env

    def _word(self, instr: Instruction, text: str, env: dict[str, str]) -> str:
        try:
            return process_word(text, env, instr.escape)
        except ShellError as exc:
            raise DockerfileError(instr.line, f"{instr.keyword}: {exc}", instr.keyword) from None

    def _words(self, instr: Instruction, env: dict[str, str]) -> list[str]:
        try:
            if instr.json_args is not None:
                return [process_word(w, env, instr.escape) for w in instr.json_args]
            return process_words(instr.rest, env, instr.escape)
        except ShellError as exc:
            raise DockerfileError(instr.line, f"{instr.keyword}: {exc}", instr.keyword) from None

    # -- ARG ---------------------------------------------------------------------------
    def _meta_arg(self, instr: Instruction) -> None:
        env = {k: v for k, v in self.meta_args.items() if v is not None}
        for word in instr.words:
            name, sep, default = word.partition("=")
            value = self._word(instr, default, env) if sep else None
            if name in self.options.build_args and self.options.build_args[name] is not None:
                value = self.options.build_args[name]
            self.meta_args[name] = value
            env = {k: v for k, v in self.meta_args.items() if v is not None}

    # -- FROM --------------------------------------------------------------------------
    async def _base_image(self, base: str) -> str:
        """The base image's ID; pulled when missing, or always with ``--pull``."""
        if not self.options.pull:
            try:
                return self.images.resolve(base)
            except NotFound:
                pass
        await self.out.stream(f"Pulling {base}\n")
        try:
            return await asyncio.to_thread(
                transfer.pull_image, self.engine, base, self.registry_auth(base), lambda message: None
            )
        except DockyardError as exc:
            if self.options.pull:
                try:
                    return self.images.resolve(base)  # --pull with no registry at hand: use what is here
                except NotFound:
                    pass
            raise BuildError(f"pull access denied for {base}: {exc.message}") from None

    def registry_auth(self, base: str) -> dict:
        """Credentials for the base image's registry from ``X-Registry-Config``, if sent."""
        domain = (
            base.split("/", 1)[0]
            if "/" in base and any(c in base.split("/", 1)[0] for c in ".:")
            else "https://index.docker.io/v1/"
        )
        for server, auth in (self.options.registry_config or {}).items():
            if server.rstrip("/").removeprefix("https://").removeprefix("http://") == domain.rstrip("/").removeprefix(
                "https://"
            ).removeprefix("http://"):
                return dict(auth)
        return {}

    async def _from(self, state: StageState) -> None:
        stage = state.stage
        env = {k: v for k, v in self.meta_args.items() if v is not None}
        for name in self.meta_args:
            self.used_args.add(name)
        base = self._word(stage.source, stage.base, env)
        if not base:
            raise DockerfileError(stage.source.line, "FROM: base name should not be blank", "FROM")
        earlier = next((s for s in self.stages[:-1] if s.stage.name and s.stage.name == base.lower()), None)
        if base.lower() == "scratch":
            state.image_id = None
            state.config = ContainerConfig()
        elif earlier is not None:
            state.image_id = earlier.image_id
            state.config = earlier.config.model_copy(deep=True)
            state.author = earlier.author
            state.shell = list(earlier.shell)
        else:
            state.image_id = await self._base_image(base)
            image = self.images.config(state.image_id)
            state.config = image.config.model_copy(deep=True)
            state.author = image.author
            shell = (image.config.model_extra or {}).get("Shell")
            if isinstance(shell, list) and shell:
                state.shell = list(shell)
        env_names = {e.partition("=")[0] for e in state.config.env or []}
        if "PATH" not in env_names:
            state.config = state.config.model_copy(
                update={"env": [f"PATH={rootfs.DEFAULT_PATH}", *(state.config.env or [])]}
            )
        await self.out.stream(f" ---> {_short(state.image_id)}\n")
        triggers = list(state.config.on_build or [])
        if triggers:
            state.config = state.config.model_copy(update={"on_build": None})
            await self.out.stream(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) != 1 else ''}\n")
            from dockyard.build.parser import _instruction  # the same rules as the Dockerfile's own lines

            for text in triggers:
                try:
                    trigger = _instruction(stage.source.line, text, "\\", nested=True)
                except DockerfileError as exc:
                    raise BuildError(f"invalid ONBUILD trigger {text!r} in the base image: {exc.message}") from None
                if trigger.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
                    raise BuildError(f"{trigger.keyword} isn't allowed as an ONBUILD trigger")
                await self._dispatch(trigger, state)

    # -- dispatch ----------------------------------------------------------------------
    async def _dispatch(self, instr: Instruction, state: StageState) -> None:
        handler = getattr(self, "_do_" + instr.keyword.lower())
        try:
            await handler(instr, state)
        except (DockerfileError, BuildError):
            raise
        except copier.CopyError:
            raise
        except InvalidParameter as exc:
            raise DockerfileError(
                instr.line,
                exc.message if exc.message.startswith(instr.keyword) else f"{instr.keyword}: {exc.message}",
                instr.keyword,
            ) from None

    async def _metadata_step(
        self, instr: Instruction, state: StageState, config: ContainerConfig, created_by: str, author: str | None = None
    ) -> None:
        """A step that only changes the config: cached by the resulting config."""
        key = step_key("meta", instr.keyword, created_by, config.api(), author)
        if await self._probe(state, key, created_by, config):
            return
        state.config = config
        if author is not None:
            state.author = author
        image_id = await asyncio.to_thread(self._commit, state, None, created_by)
        self.cache.record(self._parent(state), key, image_id)
        state.image_id = image_id
        await self.out.stream(f" ---> {_short(image_id)}\n")

    @staticmethod
    def _parent(state: StageState) -> str:
        return state.image_id or ""

    async def _probe(
        self, state: StageState, key: str, created_by: str = "", config: ContainerConfig | None = None
    ) -> bool:
        """Whether the step is cached (then ``state`` moves to the cached image).  ``created_by`` and
        the step's resulting ``config`` let ``--cache-from`` images stand in (:mod:`.cache`)."""
        if self.options.no_cache:
            return False
        hit = self.cache.lookup(self._parent(state), key)
        sources = await self._cache_sources()
        if sources:
            if hit is not None and not any(in_chain(self.images, hit, s) for s in sources):
                hit = None  # with --cache-from, only what those images are made of counts, as in Docker
            if hit is None and created_by:
                hit = await asyncio.to_thread(
                    from_sources, self.images, sources, state.image_id, created_by, config or state.config
                )
                if hit is not None:
                    self.cache.record(self._parent(state), key, hit)
        if hit is None:
            return False
        image = self.images.config(hit)
        state.image_id = hit
        state.config = image.config.model_copy(deep=True)
        state.author = image.author
        await self.out.stream(" ---> Using cache\n")
        await self.out.stream(f" ---> {_short(hit)}\n")
        return True

    async def _cache_sources(self) -> list[str]:
        """The ``--cache-from`` images that exist here (others are skipped, as Docker skips them)."""
        if self._sources is None:
            self._sources = []
            for name in self.options.cache_from:
                try:
                    self._sources.append(self.images.resolve(name))
                except DockyardError:
                    await self.out.stream(f"Image {name} not found for --cache-from: skipped\n")
        return self._sources

    def _nop(self, text: str) -> str:
        return f"/bin/sh -c #(nop)  {text}"

    # -- metadata instructions -------------------------------------------------------------
    async def _do_env(self, instr: Instruction, state: StageState) -> None:
        env = self._sub_env(state)
        new_env = list(state.config.env or [])
        shown = []
        for name, value in parse_pairs(instr, instr.escape):
            name = self._word(instr, name, env)
            value = self._word(instr, value, env)
            if not name:
                raise instr.error("ENV names can not be blank")
            new_env = _set_env(new_env, name, value)
            shown.append(f"{name}={value}")
        config = state.config.model_copy(update={"env": new_env})
        await self._metadata_step(instr, state, config, self._nop("ENV " + " ".join(shown)))

    async def _do_label(self, instr: Instruction, state: StageState) -> None:
        preset = instr.flags.get("__preset__")
        if preset is not None:
            pairs = list(json.loads(preset).items())
        else:
            env = self._sub_env(state)
            pairs = [
                (self._word(instr, k, env), self._word(instr, v, env)) for k, v in parse_pairs(instr, instr.escape)
            ]
        labels = dict(state.config.labels or {})
        for name, value in pairs:
            if not name:
                raise instr.error("LABEL names can not be blank")
            labels[name] = value
        config = state.config.model_copy(update={"labels": labels})
        shown = " ".join(f"{k}={v}" for k, v in pairs)
        await self._metadata_step(instr, state, config, self._nop("LABEL " + shown))

    async def _do_maintainer(self, instr: Instruction, state: StageState) -> None:
        await self._metadata_step(instr, state, state.config, self._nop("MAINTAINER " + instr.rest), author=instr.rest)

    async def _do_arg(self, instr: Instruction, state: StageState) -> None:
        env = self._sub_env(state)
        shown = []
        for word in instr.words:
            name, sep, default = word.partition("=")
            value: str | None = self._word(instr, default, env) if sep else None
            if value is None and name in self.meta_args:
                value = self.meta_args[name]
            if name in self.options.build_args and self.options.build_args[name] is not None:
                value = self.options.build_args[name]
            self.used_args.add(name)
            state.args[name] = value
            shown.append(word)
        await self._metadata_step(instr, state, state.config, self._nop("ARG " + " ".join(shown)))

    async def _do_expose(self, instr: Instruction, state: StageState) -> None:
        ports = _ports(self._words(instr, self._sub_env(state)))
        exposed = dict(state.config.exposed_ports or {})
        for port in ports:
            exposed[port] = {}
        config = state.config.model_copy(update={"exposed_ports": exposed})
        await self._metadata_step(instr, state, config, self._nop("EXPOSE " + " ".join(sorted(set(ports)))))

    async def _do_volume(self, instr: Instruction, state: StageState) -> None:
        paths = self._words(instr, self._sub_env(state))
        volumes = dict(state.config.volumes or {})
        for path in paths:
            if not path.strip():
                raise instr.error("VOLUME specified can not be an empty string")
            volumes[path] = {}
        config = state.config.model_copy(update={"volumes": volumes})
        await self._metadata_step(instr, state, config, self._nop(f"VOLUME {json.dumps(paths)}"))

    async def _do_user(self, instr: Instruction, state: StageState) -> None:
        user = self._word(instr, instr.rest, self._sub_env(state))
        config = state.config.model_copy(update={"user": user})
        await self._metadata_step(instr, state, config, self._nop("USER " + user))

    async def _do_stopsignal(self, instr: Instruction, state: StageState) -> None:
        value = _check_signal(self._word(instr, instr.rest, self._sub_env(state)))
        config = state.config.model_copy(update={"stop_signal": value})
        await self._metadata_step(instr, state, config, self._nop("STOPSIGNAL " + value))

    def _command(self, instr: Instruction, state: StageState) -> list[str]:
        if instr.json_args is not None:
            return list(instr.json_args)
        return [*state.shell, instr.rest]

    async def _do_cmd(self, instr: Instruction, state: StageState) -> None:
        cmd = self._command(instr, state)
        state.cmd_set = True
        config = state.config.model_copy(update={"cmd": cmd})
        await self._metadata_step(instr, state, config, self._nop("CMD " + json.dumps(cmd)))

    async def _do_entrypoint(self, instr: Instruction, state: StageState) -> None:
        entrypoint = self._command(instr, state)
        update: dict[str, Any] = {"entrypoint": entrypoint}
        if not state.cmd_set:
            update["cmd"] = None  # an inherited CMD does not survive a new ENTRYPOINT
        config = state.config.model_copy(update=update)
        await self._metadata_step(instr, state, config, self._nop("ENTRYPOINT " + json.dumps(entrypoint)))

    async def _do_shell(self, instr: Instruction, state: StageState) -> None:
        assert instr.json_args is not None
        state.shell = list(instr.json_args)
        data = state.config.model_dump(by_alias=True)
        data["Shell"] = list(instr.json_args)
        config = ContainerConfig.model_validate(data)
        await self._metadata_step(instr, state, config, self._nop("SHELL " + json.dumps(instr.json_args)))

    async def _do_onbuild(self, instr: Instruction, state: StageState) -> None:
        assert instr.trigger is not None
        config = state.config.model_copy(update={"on_build": [*(state.config.on_build or []), instr.rest]})
        await self._metadata_step(instr, state, config, self._nop("ONBUILD " + instr.rest))

    async def _do_healthcheck(self, instr: Instruction, state: StageState) -> None:
        text = instr.rest.strip()
        if text.upper() == "NONE":
            check: dict[str, Any] = {"Test": ["NONE"]}
        else:
            command = text[3:].strip()
            try:
                parsed = json.loads(command) if command.startswith("[") else None
            except ValueError:
                parsed = None
            if isinstance(parsed, list) and all(isinstance(p, str) for p in parsed):
                test = ["CMD", *parsed]
            else:
                test = ["CMD-SHELL", command]
            check = {"Test": test}
            if "start-interval" in instr.flags:  # Config.Healthcheck.StartInterval is API 1.44
                raise instr.error("HEALTHCHECK: --start-interval is not supported by this daemon (API 1.41)")
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod")):
                if flag in instr.flags:
                    value = _duration_ns(instr.flags[flag], flag)
                    if value and value < 1_000_000:
                        raise instr.error(f"HEALTHCHECK: --{flag} cannot be less than 1ms")
                    if value:
                        check[key] = value
            if "retries" in instr.flags:
                retries = instr.flags["retries"]
                if not retries.isdigit() or int(retries) < 1:
                    raise instr.error(f"HEALTHCHECK: --retries must be a positive number, not {retries!r}")
                check["Retries"] = int(retries)
        data = state.config.model_dump(by_alias=True)
        data["Healthcheck"] = check
        config = ContainerConfig.model_validate(data)
        await self._metadata_step(instr, state, config, self._nop(f"HEALTHCHECK &{json.dumps(check)}"))

    # -- WORKDIR ------------------------------------------------------------------------
    async def _do_workdir(self, instr: Instruction, state: StageState) -> None:
        path = self._word(instr, instr.rest, self._sub_env(state))
        if not path.startswith("/"):
            path = posixpath.join(state.config.working_dir or "/", path)
        path = posixpath.normpath(path)
        if path.startswith("//"):
            path = path[1:]
        config = state.config.model_copy(update={"working_dir": path})
        created_by = self._nop("WORKDIR " + path)
        exists = await asyncio.to_thread(self._exists_in_image, state.image_id, path)
        if exists:
            await self._metadata_step(instr, state, config, created_by)
            return
        key = step_key("workdir", path, config.api())
        if await self._probe(state, key, created_by, config):
            return
        parent = self._parent(state)
        state.config = config
        image_id = await self._with_layer(state, lambda root: copier._ensure_dir(root, path), created_by)
        self.cache.record(parent, key, image_id)
        state.image_id = image_id
        await self.out.stream(f" ---> {_short(image_id)}\n")

    def _exists_in_image(self, image_id: str | None, path: str) -> bool:
        if image_id is None:
            return False
        top = self.images.top_layer(image_id)
        if top is None:
            return False
        root = self.storage.mount(top)
        try:
            return rootfs.resolve_in_root(root, path).is_dir()
        finally:
            self.storage.unmount(top)

    async def _with_layer(self, state: StageState, write: Callable[[Path], None], created_by: str) -> str:
        """Make a scratch layer on the current image, let ``write`` change it, commit it."""
        parent_top = self.images.top_layer(state.image_id) if state.image_id else None
        layer = "build-" + ids.new_id()[:40]
        self.live_layers.add(layer)

        def work() -> str:
            self.storage.create_layer(layer, parent_top)
            root = self.storage.mount(layer)
            try:
                write(root)
            finally:
                self.storage.unmount(layer)
            return self._commit(state, layer, created_by)

        try:
            return await asyncio.to_thread(work)
        finally:
            await asyncio.to_thread(self._drop_layer, layer)

    # -- COPY / ADD -------------------------------------------------------------------------
    async def _do_copy(self, instr: Instruction, state: StageState) -> None:
        await self._copy(instr, state, add=False)

    async def _do_add(self, instr: Instruction, state: StageState) -> None:
        await self._copy(instr, state, add=True)

    async def _copy(self, instr: Instruction, state: StageState, add: bool) -> None:
        what = instr.keyword
        env = self._sub_env(state)
        words = self._words(instr, env)
        if len(words) < 2:
            raise instr.error(f"{what} requires at least two arguments")
        *patterns, dest = words
        chown = self._word(instr, instr.flags["chown"], env) if "chown" in instr.flags else ""
        chmod: int | None = None
        if "chmod" in instr.flags:
            text = self._word(instr, instr.flags["chmod"], env)
            if not re.fullmatch(r"[0-7]{3,4}", text):
                raise instr.error(f"{what}: invalid --chmod={text!r} (an octal mode like 755 is expected)")
            chmod = int(text, 8)
        source_root, release, label, from_id = await self._source_root(instr, state, env)
        scratch = Path(tempfile.mkdtemp(prefix="add-", dir=self.workdir))
        try:
            sources: list[copier.Source] = []
            local = [p for p in patterns if not (add and re.match(r"^https?://", p))]
            if local and source_root is None:
                raise copier.CopyError(
                    f"{what} failed: no build context: the Dockerfile came on its own "
                    f"(build -), so there are no files to {what} (sources: {' '.join(local)})"
                )
            for pattern in patterns:
                if add and re.match(r"^https?://", pattern):
                    sources.append(await self._download(pattern, scratch, dest))
                    continue
                found = await asyncio.to_thread(copier.resolve_sources, source_root, [pattern], what, label)
                if add:
                    for source in found:
                        if not source.is_dir and await asyncio.to_thread(copier.is_archive, source.path):
                            source.archive = True
                sources.extend(found)
            digests = await asyncio.to_thread(lambda: [copier.digest(s) for s in sources])
            kind = "multi" if len(sources) > 1 else ("dir" if sources[0].is_dir else "file")
            summary = step_key(digests) if len(digests) > 1 else digests[0]
            created_by = f"/bin/sh -c #(nop) {what} {kind}:{summary} in {dest} "
            key = step_key(
                what,
                digests,
                [s.archive for s in sources],
                [s.name for s in sources],
                dest,
                state.config.working_dir,
                chown,
                chmod,
                from_id,
                state.config.api(),
            )
            if await self._probe(state, key, created_by):
                return
            parent = self._parent(state)

            def write(root: Path) -> None:
                owner = copier.parse_chown(chown, root) if chown else None
                items = copier.plan(sources, dest, state.config.working_dir, root, what)
                copier.copy_into(root, items, owner, chmod)

            image_id = await self._with_layer(state, write, created_by)
            self.cache.record(parent, key, image_id)
            state.image_id = image_id
            await self.out.stream(f" ---> {_short(image_id)}\n")
        finally:
            if release is not None:
                await asyncio.to_thread(release)
            shutil.rmtree(scratch, ignore_errors=True)

    async def _source_root(
        self, instr: Instruction, state: StageState, env: dict[str, str]
    ) -> tuple[Path | None, Callable[[], None] | None, str, str]:
        """(root, release, label, image ID) of the files COPY reads: the context, a stage or an image."""
        if "from" not in instr.flags:
            if not self.context.has_context:
                return None, None, "build context", ""
            return self.context.root, None, "build context", ""
        ref = self._word(instr, instr.flags["from"], env)
        image_id: str | None
        current = len(self.stages) - 1
        named = next((s for s in self.stages if s.stage.name and s.stage.name == ref.lower()), None)
        if named is not None:
            if named is self.stages[-1]:
                raise instr.error(f"invalid from flag value {ref}: refers to the current build stage")
            image_id = named.image_id
        elif ref.isdigit():
            index = int(ref)
            if index >= current:
                raise instr.error(f"invalid from flag value {ref}: stage {index} is not an earlier build stage")
            image_id = self.stages[index].image_id
        else:
            try:
                image_id = await self._base_image(ref)
            except BuildError as exc:
                raise BuildError(f"invalid from flag value {ref}: no such stage or image ({exc.message})") from None
        top = self.images.top_layer(image_id) if image_id else None
        if top is None:
            empty = Path(tempfile.mkdtemp(prefix="empty-", dir=self.workdir))
            return empty, lambda: shutil.rmtree(empty, ignore_errors=True), f"stage {ref}", image_id or ""
        root = await asyncio.to_thread(self.storage.mount, top)
        return root, lambda: self.storage.unmount(top), f"stage {ref}", image_id or ""

    async def _download(self, url: str, scratch: Path, dest: str) -> copier.Source:
        loop = asyncio.get_running_loop()
        pending: list[asyncio.Future] = []

        def progress(done: int, total: int) -> None:
            bar = ""
            if total:
                filled = int(50 * done / total)
                bar = "[" + "=" * max(filled - 1, 0) + (">" if filled < 50 else "=") + " " * (50 - filled) + "] "
            text = f"{bar}{_size(done)}/{_size(total)}" if total else _size(done)
            message = {
                "status": "Downloading",
                "progressDetail": {"current": done, "total": total},
                "progress": text,
                "id": "",
            }
            pending.append(asyncio.run_coroutine_threadsafe(self.out.message(message), loop))

        path, name, mtime = await asyncio.to_thread(copier.download, url, scratch, progress)
        for future in pending:
            await asyncio.wrap_future(future)
        await self.out.stream("\n")
        if not dest.endswith("/"):
            name = posixpath.basename(dest) or name
        return copier.Source(path=path, name=name, is_dir=False, mode=0o600, mtime=mtime)

    # -- RUN ----------------------------------------------------------------------------------
    async def _do_run(self, instr: Instruction, state: StageState) -> None:
        argv = self._command(instr, state)
        declared = {k: v for k, v in state.args.items() if v is not None}
        env_names = {e.partition("=")[0] for e in state.config.env or []}
        build_env = [f"{k}={v}" for k, v in sorted(declared.items()) if k not in env_names]
        proxies = [
            f"{k}={v}"
            for k, v in sorted(self.options.build_args.items())
            if k in PREDEFINED_ARGS and v is not None and k not in declared and k not in env_names
        ]
        for k in self.options.build_args:
            if k in PREDEFINED_ARGS:
                self.used_args.add(k)
        shown = " ".join(argv)
        created_by = f"|{len(build_env)} {' '.join(build_env)} {shown}" if build_env else shown
        key = step_key("run", argv, build_env, state.config.api())
        if await self._probe(state, key, created_by):
            return
        if state.image_id is None:
            raise BuildError(
                f"The command '{shown}' cannot run: the image is empty (FROM scratch has no {argv[0]})", 127
            )
        parent = self._parent(state)
        config = state.config
        request = CreateRequest(
            image=state.image_id,
            cmd=argv,
            entrypoint=[],
            env=[*build_env, *proxies],
            user=config.user,
            working_dir=config.working_dir,
            labels=None,
            host_config=HostConfig(
                network_mode=self.options.network_mode,
                memory=self.options.memory,
                memory_swap=self.options.memory_swap,
                cpu_shares=self.options.cpu_shares,
                cpuset_cpus=self.options.cpuset_cpus,
                extra_hosts=self.options.extra_hosts or None,
            ),
        )
        created = await self.containers.create(request, None)
        cid = created["Id"]
        self.live_containers.add(cid)
        await self.out.stream(f" ---> Running in {ids.short(cid)}\n")
        code: int | None = None
        committing: asyncio.Future | None = None
        try:
            attach = asyncio.ensure_future(self.containers.attach(cid, False, True, True))
            # a start that fails (or is cancelled: the client left) fails the attach too; nobody awaits it then
            attach.add_done_callback(lambda f: f.cancelled() or f.exception())
            await asyncio.sleep(0)  # the attach request is registered before the start
            try:
                await self.containers.start(cid)
            except DockyardError as exc:
                attach.cancel()
                raise BuildError(f"The command '{shown}' could not be started: {exc.message}", 127) from None
            try:
                sock = await asyncio.wait_for(attach, 30)
            except (DockyardError, asyncio.TimeoutError) as exc:
                log.warning("no output from %s: %s", ids.short(cid), exc)
                sock = None
            if sock is not None:
                await self._pump(sock)
            code = await self.containers.wait(cid)
            if code != 0:
                raise BuildError(f"The command '{shown}' returned a non-zero code: {code}", code)
            committing = asyncio.ensure_future(asyncio.to_thread(self._commit, state, cid, created_by))
            image_id = await asyncio.shield(committing)
        except BaseException:
            if committing is not None:  # cancelled (the client left) while the layer is being read
                await asyncio.gather(committing, return_exceptions=True)
            if self.options.rm or self.options.force_rm:
                await self._remove_container(cid)
            else:
                self.live_containers.discard(cid)
            raise
        if self.options.rm or self.options.force_rm:
            await self._remove_container(cid)
        else:
            self.live_containers.discard(cid)
        self.cache.record(parent, key, image_id)
        state.image_id = image_id
        await self.out.stream(f" ---> {_short(image_id)}\n")

    async def _remove_container(self, cid: str) -> None:
        try:
            await self.containers.remove(cid, force=True)
            self.live_containers.discard(cid)
            await self.out.stream(f"Removing intermediate container {ids.short(cid)}\n")
        except DockyardError as exc:
            log.warning("removing intermediate container %s: %s", ids.short(cid), exc)

    async def _pump(self, sock) -> None:
        """Copy a non-TTY attach stream (stdcopy frames) into the build output."""
        import codecs

        reader, writer = await asyncio.open_connection(sock=sock)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        buffer = b""
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                buffer += data
                text = []
                while len(buffer) >= 8:
                    kind, size = struct.unpack(">BxxxL", buffer[:8])
                    if kind not in (0, 1, 2) or len(buffer) < 8 + size:
                        if kind not in (0, 1, 2):  # not framed after all: pass it through
                            text.append(decoder.decode(buffer))
                            buffer = b""
                        break
                    text.append(decoder.decode(buffer[8 : 8 + size]))
                    buffer = buffer[8 + size :]
                if text and "".join(text):
                    await self.out.stream("".join(text))
            rest = decoder.decode(buffer, final=True)
            if rest:
                await self.out.stream(rest)
        finally:
            writer.close()

    # -- committing -----------------------------------------------------------------------------
    def _commit(self, state: StageState, layer: str | None, created_by: str) -> str:
        """A new image: ``layer``'s diff (None, or no change: no new layer) on the current image."""
        return self.images.child_image(
            state.image_id,
            state.config.model_copy(deep=True),
            created_by,
            layer,
            author=state.author or "",
            skip_empty_diff=True,
            base_config=ImageConfig(architecture=_arch(), os="linux"),
        )


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}"
