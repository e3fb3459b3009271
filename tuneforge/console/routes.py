"""The console's routes, mounted at /console by api/app.py: read the session, check CSRF and the key's rights, call one
page function, render.

Every request carries a session (a visitor's, until signed in), so every POST, the sign-in form's included, must send
the session's CSRF token: a form field `csrf` or an `X-CSRF-Token` header (the page's fetches). A read-only key is
refused mutating routes here (403), whatever the page showed. Mutating routes are written to the audit log with
service "console", like the API's calls. With `serve --no-auth` nobody signs in and the CSRF check still applies.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import quote

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from tuneforge.console import pages, playground
from tuneforge.console.session import COOKIE, MAX_AGE, Session, SessionStore, csrf_ok
from tuneforge.errors import Conflict, InvalidInput, NotFound, TuneforgeError
from tuneforge.security.keys import ActiveKey
from tuneforge.settings import Settings
from tuneforge.wire import errors as wire_errors

HERE = Path(__file__).parent
PREFIX = "/console"
SERVICE = "console"  # the audit log's service label
# defence in depth behind autoescaping and textContent: only our own scripts run, no page frames the console
# (a framed Stop or Delete button could be clicked through), forms post only here
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def status_of(exc: TuneforgeError) -> int:
    # the one mapping of the tree to HTTP (wire/errors.py); OpenAI's table is plain HTTP semantics (404, 409, 429, ...)
    return wire_errors.openai(exc).status


@dataclass
class Call:
    """One request as a handler sees it: the services, who is signed in, and how to render."""

    request: Request
    s: object  # the server's Services (api.services), known here only by what it holds
    session: Session
    key: ActiveKey | None
    console: "Console"
    resource: str | None = None  # what a mutating handler acted on (an ARN), for the audit log

    def render(self, template: str, status_code: int = 200, **data) -> Response:
        return self.console.templates.TemplateResponse(self.request, template, {**self.context(), **data}, status_code=status_code)

    def context(self) -> dict:
        auth = self.s.settings.auth
        return {"csrf": self.session.csrf, "auth": auth, "key_id": self.key.access_key_id if self.key else None,
                "can_write": not (self.key and self.key.read_only), "prefix": PREFIX}

    def redirect(self, path: str) -> Response:
        return RedirectResponse(PREFIX + path, status_code=303)


Handler = Callable[[Call], Awaitable[Response]]


class Console:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)  # names and outputs are text
        self.templates = Jinja2Templates(env=env)

    @cached_property
    def sessions(self) -> SessionStore:
        return SessionStore(self.settings.home)  # on first use: the key file is made then, not at import

    def route(self, path: str, handler: Handler, *, method: str = "GET", operation: str | None = None,
              public: bool = False, api: bool = False) -> Route:
        """`operation`: the route mutates (read-only keys refused, audited under that name). `public`: no sign-in
        needed (the sign-in page). `api`: errors answer JSON (the pages' fetches), not an HTML page."""

        async def endpoint(request: Request) -> Response:
            s = request.app.state.services
            session = self.sessions.read(request.cookies.get(COOKIE))
            new_cookie = None
            if session is None:
                new_cookie, session = self.sessions.issue(None)
            key = None
            if s.settings.auth and session.access_key_id:
                key = await run_in_threadpool(s.access_keys.lookup, session.access_key_id)  # revoked: signed out
            call = Call(request, s, session, key, self)
            response = await self._answer(call, handler, method, operation, public, api)
            if new_cookie is not None and COOKIE not in response.headers.get("set-cookie", ""):
                set_session_cookie(response, request, new_cookie)
            response.headers.update(SECURITY_HEADERS)
            return response

        endpoint.__name__ = operation or handler.__name__
        return Route(path, endpoint, methods=[method])

    async def _answer(self, call: Call, handler: Handler, method: str, operation: str | None, public: bool, api: bool) -> Response:
        s, request = call.s, call.request
        if s.settings.auth and call.key is None and not public:
            if api or method != "GET":
                return _refuse(call, api, 401, "You are signed out (or your session expired): sign in again.")
            return RedirectResponse(f"{PREFIX}/signin?next={quote(request.url.path)}", status_code=303)
        if method == "POST":
            sent = request.headers.get("x-csrf-token")
            if sent is None and request.headers.get("content-type", "").startswith(("application/x-www-form", "multipart/")):
                sent = (await request.form()).get("csrf")  # parsed once: the handler reads the same form
            forged = not csrf_ok(call.session, sent if isinstance(sent, str) else None)
        else:
            forged = False
        if forged:
            response = _refuse(call, api, 403, "This form was not sent from this console session (its CSRF token is missing "
                                               "or wrong): reload the page and try again.")
        elif operation and call.key is not None and call.key.read_only:
            response = _refuse(call, api, 403, f"Access key {call.key.access_key_id} is read-only and cannot {_words(operation)}: "
                                               "sign in with a key created without --read-only.")
        else:
            try:
                response = await handler(call)
            except TuneforgeError as exc:
                response = _refuse(call, api, status_of(exc), exc.message)
        if operation:
            await run_in_threadpool(
                s.audit.record, access_key_id=call.key.access_key_id if call.key else None, service=SERVICE,
                operation=operation, resource=call.resource or request.url.path,
                status_code=response.status_code, error_code=None if response.status_code < 400 else str(response.status_code))
        return response

    def routes(self) -> list:
        r = self.route
        return [
            r("/", overview),
            r("/signin", signin_page, public=True),
            r("/signin", signin, method="POST", public=True),
            r("/signout", signout, method="POST"),
            r("/models", models),
            r("/jobs", jobs),
            r("/jobs/new", new_job),
            r("/jobs", create_job, method="POST", operation="CreateModelCustomizationJob"),
            r("/jobs/{name}", job),
            r("/jobs/{name}/stop", stop_job, method="POST", operation="StopModelCustomizationJob"),
            r("/custom-models", custom_models),
            r("/custom-models/{name}", custom_model),
            r("/custom-models/{name}/delete", delete_custom_model, method="POST", operation="DeleteCustomModel"),
            r("/custom-models/{name}/deploy", deploy, method="POST", operation="CreateCustomModelDeployment"),
            r("/deployments/{name}/delete", undeploy, method="POST", operation="DeleteCustomModelDeployment"),
            r("/playground", playground_page),
            r("/provisioned", provisioned),
            r("/provisioned", provision, method="POST", operation="CreateProvisionedModelThroughput"),
            r("/provisioned/{name}/update", update_provisioned, method="POST", operation="UpdateProvisionedModelThroughput"),
            r("/provisioned/{name}/delete", delete_provisioned, method="POST", operation="DeleteProvisionedModelThroughput"),
            r("/keys", access_keys),
            r("/audit", audit_log),
            r("/api/jobs/{name}", job_status, api=True),
            # it reads a file on the server's host: for keys that may create jobs, and audited
            r("/api/validate", validate, method="POST", operation="ValidateTrainingData", api=True),
            r("/api/chat", chat, method="POST", api=True),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="console-static"),
            r("/{path:path}", not_found),
        ]


def mount(settings: Settings) -> list:
    """What api/app.py adds to the server: the console under /console (and /console itself sent there)."""
    async def home(request: Request) -> Response:
        return RedirectResponse(PREFIX + "/", status_code=307)

    return [Route(PREFIX, home, methods=["GET"]), Mount(PREFIX, routes=Console(settings).routes())]


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(COOKIE, value, max_age=MAX_AGE, path=PREFIX, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")


def _refuse(call: Call, api: bool, status: int, message: str) -> Response:
    if api:
        return JSONResponse({"error": message}, status_code=status)
    return call.render("error.html", status_code=status, message=message, status=status)


def _words(operation: str) -> str:
    """CreateModelCustomizationJob -> "create model customization job", for messages."""
    return "".join(f" {c.lower()}" if c.isupper() else c for c in operation).strip()


def _blocking(call: Call, function, *args, **kwargs):
    return run_in_threadpool(function, call.s, *args, **kwargs)


# ---- sign-in ----------------------------------------------------------------------------------------------------
async def signin_page(call: Call) -> Response:
    if not call.s.settings.auth or call.key is not None:
        return call.redirect("/")
    return call.render("signin.html", next=call.request.query_params.get("next", ""))


async def signin(call: Call) -> Response:
    form = await call.request.form()
    key_id, secret = str(form.get("access_key_id", "")).strip(), str(form.get("secret", ""))
    target = str(form.get("next", "")) or PREFIX + "/"
    if not target.startswith(PREFIX + "/"):  # only our own pages: a crafted link must not send the user elsewhere
        target = PREFIX + "/"
    key = await run_in_threadpool(call.s.access_keys.lookup, key_id) if key_id else None
    ok = key is not None and secrets.compare_digest(key.secret.encode(), secret.encode())
    await run_in_threadpool(call.s.audit.record, access_key_id=key_id[:20] or None, service=SERVICE, operation="SignIn",
                            resource=None, status_code=303 if ok else 403, error_code=None if ok else "403")
    if not ok:
        return call.render("signin.html", status_code=403, next=target,
                           error="That key id and secret do not match an active access key: check both, or create one "
                                 "with `tuneforge keys create`.")
    cookie, _ = call.console.sessions.issue(key.access_key_id)  # a fresh CSRF token with the new identity
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, call.request, cookie)
    return response


async def signout(call: Call) -> Response:
    await run_in_threadpool(call.s.audit.record, access_key_id=call.key.access_key_id if call.key else None, service=SERVICE,
                            operation="SignOut", resource=None, status_code=303)
    response = call.redirect("/signin" if call.s.settings.auth else "/")
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


# ---- pages ------------------------------------------------------------------------------------------------------
async def not_found(call: Call) -> Response:
    raise NotFound(f"the console has no page {call.request.url.path!r}: start from the overview")


async def overview(call: Call) -> Response:
    return call.render("overview.html", **await _blocking(call, pages.overview))


async def models(call: Call) -> Response:
    q = call.request.query_params
    data = await _blocking(call, pages.foundation_models, text=q.get("q", ""), customization=q.get("customization", ""),
                           modality=q.get("output", ""))
    return call.render("models.html", **data)


async def jobs(call: Call) -> Response:
    q = call.request.query_params
    return call.render("jobs.html", **await _blocking(call, pages.jobs_page, next_token=q.get("next"), status=q.get("status", "")))


async def new_job(call: Call) -> Response:
    chosen = {"base_model": call.request.query_params.get("base", "")}  # from the catalog's "Customize" link
    return call.render("job_new.html", **await _blocking(call, pages.create_form), values=chosen, error=None)


async def _job_form(call: Call) -> tuple[pages.JobForm, UploadFile | None]:
    form = await call.request.form()  # an uploaded file is spooled to disk by Starlette, not held in memory
    text = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
    hyperparameters = {k[3:]: v for k, v in text.items() if k.startswith("hp.") and v}
    upload = form.get("training_file")
    upload = upload if isinstance(upload, UploadFile) and upload.filename else None
    return pages.JobForm(text.get("job_name", ""), text.get("custom_model_name", ""), text.get("base_model", ""),
                         text.get("customization_type", "FINE_TUNING"), text.get("training_data", ""),
                         text.get("validation_data", ""), hyperparameters), upload


async def create_job(call: Call) -> Response:
    form, upload = await _job_form(call)
    try:
        row = await _blocking(call, pages.create_job, form, *((upload.file, upload.filename) if upload else ()))
    except (InvalidInput, NotFound, Conflict) as exc:  # the form again, with what was typed and what is wrong
        return call.render("job_new.html", status_code=status_of(exc), **await _blocking(call, pages.create_form),
                           values={**form.__dict__, **{f"hp.{k}": v for k, v in form.hyperparameters.items()}}, error=exc.message)
    call.resource = row.job_arn
    return call.redirect(f"/jobs/{row.job_name}")


async def job(call: Call) -> Response:
    return call.render("job.html", **await _blocking(call, pages.job_page, call.request.path_params["name"]))


async def job_status(call: Call) -> Response:
    return JSONResponse(await _blocking(call, pages.job_status, call.request.path_params["name"]))


async def stop_job(call: Call) -> Response:
    row = await _blocking(call, pages.stop_job, call.request.path_params["name"])
    call.resource = row.job_arn
    return call.redirect(f"/jobs/{row.job_name}")


async def validate(call: Call) -> Response:
    form, upload = await _job_form(call)
    return JSONResponse(await _blocking(call, pages.validate, form, upload.file if upload else None))


async def custom_models(call: Call) -> Response:
    return call.render("custom_models.html", **await _blocking(call, pages.custom_models))


async def custom_model(call: Call) -> Response:
    return call.render("custom_model.html", **await _blocking(call, pages.custom_model, call.request.path_params["name"]))


async def delete_custom_model(call: Call) -> Response:
    name = call.request.path_params["name"]
    row = await run_in_threadpool(call.s.registry.get, name)
    call.resource = row.model_arn
    await run_in_threadpool(call.s.registry.delete, row.model_arn)  # refused (Conflict) while a deployment serves it
    return call.redirect("/custom-models")


async def deploy(call: Call) -> Response:
    form = await call.request.form()
    row = await _blocking(call, pages.deploy, call.request.path_params["name"], str(form.get("deployment_name", "")))
    call.resource = row.deployment_arn
    return call.redirect(f"/custom-models/{quote(call.request.path_params['name'])}")


async def undeploy(call: Call) -> Response:
    row, model = await _blocking(call, pages.undeploy, call.request.path_params["name"])
    call.resource = row.deployment_arn
    return call.redirect(f"/custom-models/{quote(model.model_name)}")


async def provisioned(call: Call) -> Response:
    return call.render("provisioned.html", **await _blocking(call, pages.provisioned))


async def provision(call: Call) -> Response:
    form = await call.request.form()
    row = await _blocking(call, pages.provision, str(form.get("name", "")), str(form.get("model", "")), str(form.get("units", "1")))
    call.resource = row.provisioned_model_arn
    return call.redirect("/provisioned")


async def update_provisioned(call: Call) -> Response:
    form = await call.request.form()
    row = await _blocking(call, pages.update_provisioned, call.request.path_params["name"], model=str(form.get("model", "")),
                          units=str(form.get("units", "")))
    call.resource = row.provisioned_model_arn
    return call.redirect("/provisioned")


async def delete_provisioned(call: Call) -> Response:
    row = await _blocking(call, pages.delete_provisioned, call.request.path_params["name"])
    call.resource = row.provisioned_model_arn
    return call.redirect("/provisioned")


async def access_keys(call: Call) -> Response:
    return call.render("keys.html", **await _blocking(call, pages.access_keys))


async def audit_log(call: Call) -> Response:
    q = call.request.query_params
    data = await _blocking(call, pages.audit_log, service=q.get("service", ""), operation=q.get("operation", ""), key=q.get("key", ""))
    return call.render("audit.html", **data)


async def playground_page(call: Call) -> Response:
    q = call.request.query_params
    return call.render("playground.html", **await _blocking(call, pages.playground), chosen=q.getlist("model"))


async def chat(call: Call) -> Response:
    try:
        body = json.loads(await call.request.body())
    except ValueError:
        raise InvalidInput("the body must be JSON: {model, messages, temperature, top_p, max_tokens, stop}") from None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    model, request = playground.request_from(body)
    lines = await playground.stream_chat(call.s, model, request)
    return StreamingResponse(lines, media_type="application/x-ndjson", headers={"Cache-Control": "no-cache"})
