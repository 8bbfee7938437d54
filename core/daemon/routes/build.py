"""``POST /build``: the classic builder (``docker build`` with ``DOCKER_BUILDKIT=0``, docker-py).

The body (a tar of the context, possibly compressed; or a lone Dockerfile) is
streamed to a file under ``<data-root>/tmp``, never held in memory.  Errors
found before the first message (a bad Dockerfile, a missing one, a bad tag)
are plain HTTP errors, as moby sends them; after that they travel inside the
200 stream as ``{"errorDetail": ..., "error": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from typing import Annotated, TypeVar

from aiohttp import web
from pydantic import Field

from dockyard import auth_header, ids, platforms, reference
from dockyard.build import context as build_context
from dockyard.build.builder import BuildError, BuildOptions, Builder, Output
from dockyard.build.cache import cache_for
from dockyard.daemon.deps import engine as _engine
from dockyard.daemon.http import (
    add_route,
    cancel_when_client_leaves,
    json_response,
    json_stream_response,
    write_message,
)
from dockyard.daemon.params import Bool, FilterKeys, FiltersParam, Query, query
from dockyard.filters import Filters
from dockyard.models.api import Allowed, Refused
from dockyard.engine import Engine
from dockyard.errors import DockyardError, InvalidParameter

log = logging.getLogger(__name__)


T = TypeVar("T", dict, list)


def _json_value(name: str, raw: str, kind: type[T]) -> T:
    """A query parameter holding JSON (``buildargs``, ``labels``: an object; ``cachefrom``: a list);
    empty when absent or null."""
    if not raw:
        return kind()
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidParameter(f"invalid {name}: {raw!r} is not JSON") from None
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise InvalidParameter(f"invalid {name}: expected a JSON {'object' if kind is dict else 'array'}")
    return value


class BuildQuery(Query):
    dockerfile: str = "Dockerfile"
    t: list[str] = Field(default_factory=list)
    extrahosts: list[str] = Field(default_factory=list)
    remote: str = ""
    q: Bool = False
    nocache: Bool = False
    cachefrom: str = ""
    pull: Bool = False
    rm: Bool = True
    forcerm: Bool = False
    memory: int = 0
    memswap: int = 0
    cpushares: int = 0
    cpusetcpus: str = ""
    cpuperiod: Annotated[int, Refused()] = 0
    cpuquota: Annotated[int, Refused()] = 0
    buildargs: str = ""
    shmsize: Annotated[int, Refused()] = 0
    squash: Annotated[Bool, Refused("squashing is an experimental feature of Docker")] = False
    labels: str = ""
    networkmode: str = ""
    platform: str = ""
    target: str = ""
    outputs: Annotated[str, Refused("build outputs are BuildKit's")] = ""
    version: Annotated[
        str, Allowed("1", why="the classic builder; BuildKit (version=2) is not supported: use DOCKER_BUILDKIT=0")
    ] = "1"


def options_from(q: BuildQuery, request: web.Request) -> BuildOptions:
    platforms.check(q.platform)
    tags = [reference.parse_repository_tag(t) for t in q.t]
    build_args = _json_value("buildargs", q.buildargs, dict)
    labels = _json_value("labels", q.labels, dict)
    cache_from = _json_value("cachefrom", q.cachefrom, list)
    return BuildOptions(
        tags=tags,
        dockerfile=q.dockerfile or "Dockerfile",
        quiet=q.q,
        no_cache=q.nocache,
        pull=q.pull,
        rm=q.rm or q.forcerm,
        force_rm=q.forcerm,
        build_args={str(k): (None if v is None else str(v)) for k, v in build_args.items()},
        labels={str(k): str(v) for k, v in labels.items()},
        target=q.target,
        registry_config=_registry_config(request),
        network_mode=q.networkmode or "default",
        extra_hosts=[h for item in q.extrahosts for h in item.split(",") if h],
        cache_from=[str(c) for c in cache_from],
        memory=q.memory,
        memory_swap=q.memswap,
        cpu_shares=q.cpushares,
        cpuset_cpus=q.cpusetcpus,
    )


async def build(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    workdir = engine.data_root / "tmp" / f"build-{ids.new_id()[:16]}"
    workdir.mkdir(parents=True)
    try:
        # the body first: answering before it is read would cut the client off mid-upload
        body_path = workdir / "context.body"
        with open(body_path, "wb") as out:
            async for chunk in request.content.iter_chunked(1 << 20):
                await asyncio.to_thread(out.write, chunk)
        q = query(request, BuildQuery)
        options = options_from(q, request)
        remote = q.remote
        with open(body_path, "rb") as body:
            ctx = await asyncio.to_thread(
                build_context.prepare, workdir, body if not remote else None, remote, options.dockerfile
            )
        body_path.unlink()
        return await _run(request, engine, ctx, options, workdir)
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)


async def _run(request: web.Request, engine: Engine, ctx, options: BuildOptions, workdir) -> web.StreamResponse:
    response: web.StreamResponse | None = None

    async def send(message: dict) -> None:
        nonlocal response
        if response is None:
            response = await json_stream_response(request)
        await write_message(response, message)

    output = Output(send, options.quiet)
    builder = Builder(engine, ctx, options, output, cache_for(engine.data_root, engine.store), workdir)
    builder.parse()  # a bad Dockerfile or --target is an HTTP error: nothing was sent yet
    finished = False
    try:
        # a client that leaves cancels the build: its containers and layers are removed at once
        async with cancel_when_client_leaves(request):
            image_id = await builder.build()
            for repo, tag in options.tags:
                engine.images.tag(image_id, repo, tag)
            if options.quiet:
                await send({"stream": f"sha256:{image_id}\n"})
            else:
                await output.message({"aux": {"ID": f"sha256:{image_id}"}})
                await output.stream(f"Successfully built {ids.short(image_id)}\n")
                for repo, tag in options.tags:
                    await output.stream(f"Successfully tagged {repo}:{tag}\n")
            finished = True
        if not finished:
            log.info("build client went away; build cancelled")
            return response or web.Response(status=499)
    except (ConnectionResetError, BrokenPipeError):
        log.info("build client went away; build cancelled")
        return response or web.Response(status=499)
    except Exception as exc:
        if isinstance(exc, DockyardError):
            message = exc.message
        else:
            log.exception("build failed")
            message = f"internal error: {exc!r}"
        if response is None and not output.held and not isinstance(exc, BuildError):
            raise  # nothing sent yet: a plain HTTP error
        try:
            await output.flush_held()
            detail: dict = {"message": message}
            if isinstance(exc, BuildError) and exc.code is not None:
                detail["code"] = exc.code
            await send({"errorDetail": detail, "error": message})
        except (ConnectionResetError, BrokenPipeError):
            pass
    assert response is not None
    return response


class BuildPruneQuery(Query):
    keep_storage: int = Field(default=0, alias="keep-storage")
    all: Bool = False
    filters: Annotated[FiltersParam, FilterKeys("until")] = Filters()


async def prune(request: web.Request) -> web.Response:
    """``POST /build/prune``: forget build cache entries (the images they point at stay, as the classic
    builder's images do; ``docker image prune`` removes those).  An entry holds no storage of its own,
    so the cache always fits in a ``keep-storage`` above 0: nothing is pruned then."""
    q = query(request, BuildPruneQuery)
    if q.keep_storage < 0:
        raise InvalidParameter(f"keep-storage is in bytes and expects a positive integer, got {q.keep_storage}")
    deleted: list[str] = []
    if q.keep_storage == 0:
        deleted = await asyncio.to_thread(
            cache_for(_engine(request).data_root, _engine(request).store).prune, q.filters.until()
        )
    return json_response({"CachesDeleted": deleted or None, "SpaceReclaimed": 0})


def register(app: web.Application) -> None:
    # /grpc (BuildKit) falls through to the app's JSON 404; /session is refused (system routes)
    add_route(app, "POST", "/build", build, query=BuildQuery, binary_body=True)
    add_route(app, "POST", "/build/prune", prune, query=BuildPruneQuery)


def _registry_config(request: web.Request) -> dict[str, dict]:
    """``X-Registry-Config``: the client's credentials by registry, for pulling base images."""
    return auth_header.decode_config(request.headers.get("X-Registry-Config"))
