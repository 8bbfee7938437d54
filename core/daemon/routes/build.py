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

from aiohttp import web

from dockyard import auth_header, ids, reference
from dockyard.build import context as build_context
from dockyard.build.builder import BuildError, BuildOptions, Builder, Output
from dockyard.build.cache import cache_for
from dockyard.daemon.deps import engine as _engine
from dockyard.daemon.http import (add_route, cancel_when_client_leaves, json_stream_response, query_bool, query_int,
                                  write_message)
from dockyard.engine import Engine
from dockyard.errors import DockyardError, InvalidParameter

log = logging.getLogger(__name__)


def _json_param(request: web.Request, name: str, kind: type) -> object:
    raw = request.query.get(name)
    if not raw:
        return kind()
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidParameter(f"invalid {name}: {raw!r} is not JSON") from None
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise InvalidParameter(f"invalid {name}: expected a JSON {kind.__name__}")
    return value


def options_from(request: web.Request) -> BuildOptions:
    q = request.query
    if q.get("version") == "2":
        raise InvalidParameter("version=2 (BuildKit) is not supported by this daemon; use the classic builder "
                               "(DOCKER_BUILDKIT=0)")
    if query_bool(request, "squash"):
        raise InvalidParameter("squash is not supported by this daemon")
    tags = []
    for t in q.getall("t", []):
        if not t:
            continue
        tags.append(reference.parse_repository_tag(t))
    build_args = _json_param(request, "buildargs", dict)
    labels = _json_param(request, "labels", dict)
    extra_hosts = [h for h in (q.get("extrahosts") or "").split(",") if h]
    return BuildOptions(
        tags=tags,
        dockerfile=q.get("dockerfile") or "Dockerfile",
        quiet=query_bool(request, "q"),
        no_cache=query_bool(request, "nocache"),
        pull=query_bool(request, "pull"),
        rm=query_bool(request, "rm", True),
        force_rm=query_bool(request, "forcerm"),
        build_args={str(k): (None if v is None else str(v)) for k, v in build_args.items()},  # type: ignore[union-attr]
        labels={str(k): str(v) for k, v in labels.items()},  # type: ignore[union-attr]
        target=q.get("target") or "",
        registry_config=_registry_config(request),
        network_mode=q.get("networkmode") or "default",
        extra_hosts=extra_hosts,
        memory=query_int(request, "memory", 0),
        memory_swap=query_int(request, "memswap", 0),
        cpu_shares=query_int(request, "cpushares", 0),
        cpuset_cpus=q.get("cpusetcpus") or "",
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
        options = options_from(request)
        remote = request.query.get("remote") or ""
        with open(body_path, "rb") as body:
            ctx = await asyncio.to_thread(build_context.prepare, workdir, body if not remote else None, remote,
                                          options.dockerfile)
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


def register(app: web.Application) -> None:
    # /session and /grpc (BuildKit) fall through to the app's JSON 404
    add_route(app, "POST", "/build", build)


def _registry_config(request: web.Request) -> dict[str, dict]:
    """``X-Registry-Config``: the client's credentials by registry, for pulling base images."""
    return auth_header.decode_config(request.headers.get("X-Registry-Config"))
