"""The web app's HTTP side (Starlette): the page, uploads, jobs, live frames by server-sent
events, results. It only translates: problems come from `dip.problems.REGISTRY` and their
fields' `Option` metadata, as the command line's do; the work is `dip.run` in a `Worker`.

Every request needs the server's token (query `token`, header `X-Dip-Token`, or the cookie the
page gets on its first visit). No text from a request reaches the filesystem: uploads are
decoded from bytes under names the server makes, results are served from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import re
import secrets
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import DipError
from ..presets import presets_for
from ..problems import REGISTRY
from .jobs import Job, TempFolder, Worker, decode

STATIC = Path(__file__).parent / "static"
VIEWER = Path(__file__).parent.parent / "report" / "viewer.js"  # the report's viewer, not a second one
TASKS = ("denoise", "deblock", "super-resolve", "inpaint", "deblur")
COOKIE = "dip_token"


@dataclasses.dataclass(frozen=True)
class Limits:
    upload_bytes: int = 40 * 2**20
    pixels: int = 2048 * 2048
    steps: int = 20000


class TokenCheck:
    """ASGI middleware: refuse any request without the token (403, one line)."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and not self._allowed(Request(scope)):
            response = PlainTextResponse(
                "dip serve: this page needs the token printed when the server started; open the URL it printed\n",
                status_code=403,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, request: Request) -> bool:
        given = (
            request.query_params.get("token") or request.headers.get("x-dip-token") or request.cookies.get(COOKIE) or ""
        )
        return secrets.compare_digest(given.encode(), self.token.encode())


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def describe_tasks() -> list[dict]:
    """What the page needs to build its forms: each task's options and presets."""
    tasks = []
    for command in TASKS:
        cls = REGISTRY[command]
        options, images = [], []
        for item in dataclasses.fields(cls):
            option = item.metadata.get("cli")
            if option is None:
                continue
            if option.image:
                images.append({"name": item.name, "help": option.help, "required": option.required})
                continue
            default = item.default if item.default is not dataclasses.MISSING else None
            options.append(
                {
                    "name": item.name,
                    "help": option.help,
                    "flag": option.flags[0] if option.flags else item.name,
                    "default": default if isinstance(default, (int, float, str, bool)) or default is None else None,
                    "choices": list(option.choices) if option.choices else None,
                    "required": option.required,
                    "switch": isinstance(default, bool),
                }
            )
        presets = [p.name for p in presets_for(cls.task) if not p.picked_for]  # the problem picks those itself
        tasks.append({"command": command, "help": cls.help, "options": options, "images": images, "presets": presets})
    return tasks


def build_problem(command: str, values: dict, images: dict):
    """The task's Problem from the page's values (text, parsed as the CLI parses it, never as a
    path) and uploads (a mask)."""
    if command not in TASKS:
        raise DipError(f"unknown task {command!r}; choose from {', '.join(TASKS)}")
    cls = REGISTRY[command]
    kwargs = {}
    for item in dataclasses.fields(cls):
        option = item.metadata.get("cli")
        if option is None:
            continue
        if option.image:
            if item.name in images:
                kwargs[item.name] = images[item.name].pixels
            elif option.required:
                raise DipError(f"{command} needs a {item.name}: paint it or load a file")
            continue
        value = values.get(item.name)
        if value is None or value == "":
            if option.required:
                raise DipError(f"{command} needs {option.flags[0] if option.flags else item.name}")
            continue
        if isinstance(item.default, bool):
            kwargs[item.name] = bool(value)
            continue
        try:
            kwargs[item.name] = option.parse_remote(str(value))
        except ValueError as error:
            raise DipError(f"{item.name}: {error}") from None
        if option.choices and kwargs[item.name] not in option.choices:
            raise DipError(f"{item.name} must be one of {', '.join(map(str, option.choices))}")
    return cls(**kwargs)


class Handlers:
    """The app's request handlers, over one worker, one temporary folder and one token."""

    def __init__(self, device: str, token: str, limits: Limits, abandon_seconds: float):
        self.device, self.token, self.limits = device, token, limits
        self.temp = TempFolder()
        self.worker = Worker(device, self.temp, abandon_seconds)

    async def index(self, request: Request) -> Response:
        response = FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})
        response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
        return response

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        files = {"app.js": STATIC / "app.js", "app.css": STATIC / "app.css", "viewer.js": VIEWER}
        if name not in files:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(files[name])

    async def tasks(self, request: Request) -> Response:
        limits = dataclasses.asdict(self.limits)
        return JSONResponse({"tasks": describe_tasks(), "device": self.device, "limits": limits})

    async def upload(self, request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.limits.upload_bytes:
            return _error(f"the file is larger than the limit of {self.limits.upload_bytes // 2**20} MB", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.limits.upload_bytes:
                return _error(f"the file is larger than the limit of {self.limits.upload_bytes // 2**20} MB", 413)
            chunks.append(chunk)
        if not size:
            return _error("the file is empty")
        name = re.sub(r"[^\w.\- ]", "_", request.headers.get("x-filename", "image"))[:100] or "image"
        try:
            done = await asyncio.to_thread(decode, b"".join(chunks), name, self.temp, self.limits.pixels)
        except DipError as error:
            return _error(str(error))
        self.worker.add_upload(done)
        height, width = done.picture.pixels.shape[:2]
        return JSONResponse({"id": done.id, "name": name, "width": width, "height": height})

    async def preview(self, request: Request) -> Response:
        found = self.worker.uploads.get(request.path_params["id"])
        if found is None:
            return PlainTextResponse("no such upload", status_code=404)
        return Response(found.preview(), media_type="image/png")

    async def create_job(self, request: Request) -> Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error("expected a JSON body")
        if not isinstance(body, dict):
            return _error("expected a JSON object")
        source = self.worker.uploads.get(str(body.get("upload", "")))
        if source is None:
            return _error("open an image first (the upload was not found: it may have expired)")
        images = {}
        for name, upload_id in (body.get("images") or {}).items():
            found = self.worker.uploads.get(str(upload_id))
            if found is None:
                return _error(f"the {name} upload was not found")
            images[str(name)] = found
        options = {"preset": str(body.get("preset") or "default")}
        if body.get("steps") not in (None, ""):
            try:
                steps = int(body["steps"])
            except (TypeError, ValueError):
                return _error("steps must be a whole number")
            if not 1 <= steps <= self.limits.steps:
                return _error(f"steps must be between 1 and {self.limits.steps}")
            options["steps"] = steps
        try:
            problem = build_problem(str(body.get("task", "")), body.get("options") or {}, images)
            problem.check(source.picture.pixels)
            if options["preset"] not in [p.name for p in presets_for(problem.task)]:
                raise DipError(f"unknown preset {options['preset']!r} for {problem.task}")
        except DipError as error:
            return _error(str(error))
        job = Job(secrets.token_hex(8), source, problem, options)
        self.worker.submit(job)
        return JSONResponse({"id": job.id, "place": self.worker.place(job)})

    def _job(self, request: Request) -> Job | None:
        job = self.worker.jobs.get(request.path_params["id"])
        if job is not None:
            job.seen()
        return job

    def _status(self, job: Job) -> dict:
        return {
            "id": job.id,
            "status": job.status,
            "place": self.worker.place(job),
            "message": job.message,
            "frames": len(job.frames),
            "total": job.total_steps,
            "baseline": job.baseline[0] if job.baseline else None,
            "chosen": job.restoration.fit.step if job.restoration and job.restoration.fit else None,
        }

    async def job_status(self, request: Request) -> Response:
        job = self._job(request)
        return JSONResponse(self._status(job)) if job else _error("no such job", 404)

    async def stop_job(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return _error("no such job", 404)
        self.worker.stop(job)
        return JSONResponse(self._status(job))

    async def events(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return _error("no such job", 404)

        async def stream():
            sent, last = 0, None
            while True:
                job.seen()
                while sent < len(job.frames):
                    frame = job.frames[sent]
                    data = {
                        "index": sent,
                        "step": frame.step,
                        "loss": frame.loss if math.isfinite(frame.loss) else None,
                        "seconds": frame.seconds,
                        "eta": frame.eta,
                    }
                    yield f"event: frame\ndata: {json.dumps(data)}\n\n"
                    sent += 1
                status = self._status(job)
                if status != last:
                    yield f"event: status\ndata: {json.dumps(status)}\n\n"
                    last = status
                if job.finished:
                    return
                await asyncio.sleep(0.2)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def frame(self, request: Request) -> Response:
        job = self._job(request)
        index = request.path_params["index"]
        if job is None or not 0 <= index < len(job.frames):
            return PlainTextResponse("no such frame", status_code=404)
        return Response(job.frames[index].png, media_type="image/png")

    async def result(self, request: Request) -> Response:
        job = self._job(request)
        if job is None or job.result is None:
            return PlainTextResponse("no result yet", status_code=404)
        stem = Path(job.upload.name).stem or "image"
        headers = {"Content-Disposition": f'attachment; filename="{stem}-{job.problem.task}.png"'}
        return Response(job.result, media_type="image/png", headers=headers)

    async def baseline(self, request: Request) -> Response:
        job = self._job(request)
        if job is None or job.baseline is None:
            return PlainTextResponse("no baseline", status_code=404)
        return Response(job.baseline[1], media_type="image/png")

    async def animation(self, request: Request) -> Response:
        from ..report.animation import animate

        job = self._job(request)
        kind = request.path_params["kind"]
        if job is None or not job.frames or kind not in ("webp", "gif"):
            return PlainTextResponse("no frames", status_code=404)
        total = f" / {job.total_steps}" if job.total_steps else ""
        frames = [(_pixels(f.png), f"step {f.step}{total}") for f in job.frames]
        data = await asyncio.to_thread(animate, frames, kind)
        stem = Path(job.upload.name).stem or "image"
        headers = {"Content-Disposition": f'attachment; filename="{stem}-process.{kind}"'}
        return Response(data, media_type=f"image/{kind}", headers=headers)

    def close(self) -> None:
        self.worker.close()
        self.temp.close()


def create_app(device: str = "auto", token: str | None = None, limits: Limits = Limits(), abandon_seconds=30.0):
    """The ASGI app; `app.state.token` is the token to print, `app.state.worker` runs the jobs."""
    handlers = h = Handlers(device, token or secrets.token_urlsafe(24), limits, abandon_seconds)
    routes = [
        Route("/", h.index),
        Route("/static/{name}", h.static),
        Route("/api/tasks", h.tasks),
        Route("/api/uploads", h.upload, methods=["POST"]),
        Route("/api/uploads/{id}/preview.png", h.preview),
        Route("/api/jobs", h.create_job, methods=["POST"]),
        Route("/api/jobs/{id}", h.job_status),
        Route("/api/jobs/{id}/stop", h.stop_job, methods=["POST"]),
        Route("/api/jobs/{id}/events", h.events),
        Route("/api/jobs/{id}/frames/{index:int}.png", h.frame),
        Route("/api/jobs/{id}/result.png", h.result),
        Route("/api/jobs/{id}/baseline.png", h.baseline),
        Route("/api/jobs/{id}/process.{kind}", h.animation),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            handlers.close()

    app = Starlette(routes=routes, middleware=[Middleware(TokenCheck, token=handlers.token)], lifespan=lifespan)
    app.state.token, app.state.worker, app.state.temp = handlers.token, handlers.worker, handlers.temp
    return app


def _pixels(data: bytes):
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32) / 255
