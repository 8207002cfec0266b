"""The web app of the request benchmark (web.py): one WSGI app for gunicorn, one ASGI
app for uvicorn, each with three routes doing the same small job:

- ``/plain``: in the server's worker;
- ``/isolated``: in a goforkpy child per request (warm: a fork of the zygote);
- ``/reused``: in an isolated worker process reused from request to request.
"""

import asyncio

import goforkpy as fork

fork.init()
fork.set_start_method("warm")  # a child per request forks from a zygote: milliseconds


@fork.register
def parse(n):
    """The request's work: a few hundred microseconds of CPU."""
    return sum(i * i for i in range(n))


per_request = fork.isolated(parse)
reused = fork.isolated(parse, isolate="worker")
WORK = 2000


def _body(value):
    return str(value).encode()


def wsgi(environ, start_response):
    path = environ["PATH_INFO"]
    work = {"/isolated": per_request, "/reused": reused}.get(path, parse)
    body = _body(work(WORK))
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/isolated":
        value = await fork.run_async("parse", WORK)
    elif path == "/reused":
        value = await asyncio.to_thread(reused, WORK)
    else:
        value = parse(WORK)
    body = _body(value)
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def post_fork(server, worker):
    """gunicorn's hook: each worker starts its own zygote before its first request."""
    fork.warm_up()
