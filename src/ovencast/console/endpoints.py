"""The web console's pages (docs/decisions/011-web-console.md): server-rendered HTML at
`/`, signed in with an API key (console/session.py), scoped exactly as the API scopes
that key: a tenant key sees its tenant only, another tenant's pages answer 404 in the
API's words; a global key picks a tenant. Each route opens one unit of work, calls the
console's page function (console/service.py, over the domain services) and renders a
template. State-changing forms are POSTs with the session's CSRF token.

None of these routes is part of the JSON API: `include_in_schema=False` keeps them out
of its OpenAPI schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile
from starlette.templating import Jinja2Templates

from ovencast.api.dependencies import get_database, get_rate_limiter, get_settings
from ovencast.api.errors import error_code, status_for
from ovencast.console import service
from ovencast.console.session import (
    CSRF_FIELD,
    ConsoleSession,
    SessionCookies,
    check_form,
    session_caller,
    session_cookies,
)
from ovencast.datasets.history import ImportMode
from ovencast.datasets.reader import SALES_FILE, DatasetProblems
from ovencast.db.session import unit_of_work
from ovencast.db.tables import Tenant
from ovencast.errors import InvalidRequest, OvencastError, Unauthenticated
from ovencast.jobs import service as jobs_service
from ovencast.jobs.schemas import JobId
from ovencast.keys import service as keys_service
from ovencast.keys.access import Caller
from ovencast.keys.roles import Role
from ovencast.models import service as models_service
from ovencast.models.schemas import VersionNumber
from ovencast.settings import Settings
from ovencast.tenants import service as tenants_service

router = APIRouter(include_in_schema=False)

SIGN_IN = "/sign-in"
UPLOAD_FIELDS = {SALES_FILE: "sales", "weather.csv": "weather", "traffic.csv": "traffic",
                 "calendar.csv": "calendar"}
# The console's pages load only what the package serves (no CDN, nothing inline).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "style-src 'self'; script-src 'self'; connect-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _environment() -> Environment:
    environment = Environment(loader=PackageLoader("ovencast.console", "templates"),
                              autoescape=select_autoescape(default=True))
    environment.filters["segment"] = lambda value: quote(str(value), safe="")
    environment.filters["off_by"] = service.off_by
    environment.filters["model_name"] = service.chosen_model
    environment.filters["metric"] = _metric
    return environment


def _metric(value: Any) -> str:
    return "–" if not isinstance(value, int | float) else f"{value:.3f}"


templates = Jinja2Templates(env=_environment())


def render(request: Request, template: str, *, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, template, context,
                                          status_code=status_code)
    response.headers.update(PAGE_HEADERS)
    return response


def error_page(request: Request, exc: OvencastError, *, caller: Caller | None = None,
               csrf: str | None = None) -> HTMLResponse:
    return render(request, "error.html", status_code=status_for(exc), caller=caller,
                  csrf=csrf, error=error_code(exc), detail=exc.message)


def to_sign_in() -> RedirectResponse:
    return RedirectResponse(SIGN_IN, status_code=303)


def tenant_url(tenant: str, *parts: str | int) -> str:
    return "/".join(["", "tenants", quote(tenant, safe=""),
                     *(quote(str(p), safe="") for p in parts)])


# -- the signed-in request ----------------------------------------------------------------
class Visit:
    """A signed-in request: the caller and its session."""

    def __init__(self, request: Request, caller: Caller, session: ConsoleSession) -> None:
        self.request = request
        self.caller = caller
        self.session = session

    def page(self, template: str, *, status_code: int = 200, **context: Any
             ) -> HTMLResponse:
        return render(self.request, template, status_code=status_code, caller=self.caller,
                      csrf=self.session.csrf, **context)

    def error(self, exc: OvencastError) -> HTMLResponse:
        return error_page(self.request, exc, caller=self.caller, csrf=self.session.csrf)


async def visit(request: Request) -> Visit:
    """The request's caller (`Unauthenticated` when not signed in), counted against its
    rate limit as an API request is."""
    caller, session = await session_caller(request, get_database(request))
    await get_rate_limiter(request).hit(caller.rate_limit_bucket)
    return Visit(request, caller, session)


async def signed_in(request: Request) -> Visit | Response:
    """The request's visit, or the answer instead of one: the sign-in page when not signed
    in, an error page when it is refused otherwise (the rate limit, say)."""
    try:
        return await visit(request)
    except Unauthenticated:
        return to_sign_in()
    except OvencastError as exc:
        return error_page(request, exc)


async def reach(session: AsyncSession, caller: Caller, tenant: str, role: Role) -> Tenant:
    """The API's checks (keys/access.py) in the API's order: another tenant is 404 in the
    words of one that does not exist, then the role (403)."""
    if not caller.reaches_tenant(tenant):
        raise tenants_service.tenant_not_found(tenant)
    row = await tenants_service.get_tenant(session, tenant)
    caller.require_role(role)
    return row


Work = Callable[[AsyncSession, Tenant, Visit], Awaitable[Response]]


async def tenant_request(request: Request, tenant: str, role: Role, work: Work, *,
                         form: bool = False) -> Response:
    """One console request about `tenant`: signed in (else to the sign-in page), the form's
    origin and CSRF token checked (`form`), one unit of work (committed when `work`
    returns; an error rolls it back and is shown as a page with the API's status)."""
    seen = await signed_in(request)
    if isinstance(seen, Response):
        return seen
    try:
        if form:
            check_form(request, seen.session, (await request.form()).get(CSRF_FIELD))
        async with unit_of_work(get_database(request).sessions) as session:
            row = await reach(session, seen.caller, tenant, role)
            return await work(session, row, seen)
    except OvencastError as exc:
        return seen.error(exc)
    finally:
        await request.close()  # an upload's spooled files


class SectionPage(Protocol):
    """A console page function (console/service.py) that needs only the tenant."""

    def __call__(self, session: AsyncSession, tenant: Tenant, *, settings: Settings
                 ) -> Awaitable[object]: ...


async def section_page(request: Request, tenant: str, template: str, *, section: str,
                       build: SectionPage, **context: Any) -> Response:
    """A read-only page of `tenant`: the page `build` returns, rendered with `template`
    under the navigation's `section`."""

    async def work(session: AsyncSession, row: Tenant, seen: Visit) -> Response:
        page = await build(session, row, settings=get_settings(request))
        return seen.page(template, tenant=row, section=section, page=page, **context)

    return await tenant_request(request, tenant, Role.READ, work)


# -- sign-in -------------------------------------------------------------------------------
@router.get("/")
async def home(request: Request) -> Response:
    seen = await signed_in(request)
    if isinstance(seen, Response):
        return seen
    if seen.caller.tenant is not None:
        return RedirectResponse(tenant_url(seen.caller.tenant), status_code=303)
    async with unit_of_work(get_database(request).sessions) as session:
        tenants = list(await tenants_service.list_tenants(session))
    return seen.page("tenants.html", tenants=tenants)


@router.get(SIGN_IN)
async def sign_in_form(request: Request) -> Response:
    return render(request, "sign_in.html", caller=None, csrf=None, message=None)


@router.post(SIGN_IN)
async def sign_in(request: Request) -> Response:
    form = await request.form()
    try:
        check_form(request, None, None)
        presented = form.get("key")
        async with unit_of_work(get_database(request).sessions) as session:
            signed_in = await keys_service.sign_in(
                session, presented.strip() if isinstance(presented, str) else None)
    except OvencastError as exc:
        return render(request, "sign_in.html", status_code=status_for(exc), caller=None,
                      csrf=None, message=exc.message)
    response = RedirectResponse("/", status_code=303)
    session_cookies(request).issue(response, signed_in,
                                   secure=request.url.scheme == "https")
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    try:
        seen = await visit(request)
        check_form(request, seen.session, (await request.form()).get(CSRF_FIELD))
    except Unauthenticated:
        pass  # nothing to end
    except OvencastError as exc:
        return error_page(request, exc)
    response = to_sign_in()
    SessionCookies.clear(response)
    return response


# -- overview and products ----------------------------------------------------------------
@router.get("/tenants/{tenant}")
async def overview(request: Request, tenant: str) -> Response:
    return await section_page(request, tenant, "overview.html", section="overview",
                              build=service.overview)


@router.get("/tenants/{tenant}/products/{product}")
async def product(request: Request, tenant: str, product: str) -> Response:
    async def work(session: AsyncSession, row: Tenant, seen: Visit) -> Response:
        page = await service.product_page(session, row, product,
                                          settings=get_settings(request))
        return seen.page("product.html", tenant=row, section="overview", page=page)

    return await tenant_request(request, tenant, Role.READ, work)


@router.get("/tenants/{tenant}/products/{product}/forecast.csv")
async def product_csv(request: Request, tenant: str, product: str) -> Response:
    async def work(session: AsyncSession, row: Tenant, seen: Visit) -> Response:
        page = await service.product_page(session, row, product,
                                          settings=get_settings(request))
        name = quote(f"{row.name}-{product}-forecast.csv", safe="")
        return Response(service.forecast_csv(page), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}",
                                 "Cache-Control": "no-store"})

    return await tenant_request(request, tenant, Role.READ, work)


# -- jobs --------------------------------------------------------------------------------
@router.get("/tenants/{tenant}/jobs")
async def jobs(request: Request, tenant: str) -> Response:
    return await section_page(request, tenant, "jobs.html", section="jobs",
                              build=service.jobs_page, models=service.MODEL_CHOICES)


@router.post("/tenants/{tenant}/jobs")
async def start_job(request: Request, tenant: str) -> Response:
    async def work(session: AsyncSession, row: Tenant, seen: Visit) -> Response:
        form = await request.form()
        model = str(form.get("model") or service.MODEL_CHOICES[0])
        job = await service.start_job(
            session, row, settings=get_settings(request), model=model,
            products=[str(p) for p in form.getlist("product")])
        return RedirectResponse(tenant_url(row.name, "jobs", job.id), status_code=303)

    return await tenant_request(request, tenant, Role.TRAIN, work, form=True)


@router.get("/tenants/{tenant}/jobs/{job_id}")
async def job(request: Request, tenant: str, job_id: JobId) -> Response:
    async def work(session: AsyncSession, row: Tenant, seen: Visit) -> Response:
        found = await jobs_service.get_job(session, job_id, tenant_id=row.id)
        page = await service.job_page(session, row, found)
        return seen.page("job.html", tenant=row, section="jobs", page=page)

    return await tenant_request(request, tenant, Role.READ, work)


@router.post("/tenants/{tenant}/jobs/{job_id}/cancel")
async def cancel_job(request: Request, tenant: str, job_id: JobId) -> Response:
    async def work(session: AsyncSession, row: Tenant, seen: Visit) -> Response:
        await jobs_service.get_job(session, job_id, tenant_id=row.id)
        await jobs_service.cancel_job(session, job_id)
        return RedirectResponse(tenant_url(row.name, "jobs", job_id), status_code=303)

    return await tenant_request(request, tenant, Role.TRAIN, work, form=True)


# -- models ------------------------------------------------------------------------------
@router.get("/tenants/{tenant}/models")
async def models(request: Request, tenant: str) -> Response:
    return await section_page(request, tenant, "models.html", section="models",
                              build=service.models_page)


@router.get("/tenants/{tenant}/models/{product}/versions/{version}/activate")
async def confirm_activation(request: Request, tenant: str, product: str,
                             version: VersionNumber) -> Response:
    async def work(session: AsyncSession, row: Tenant, seen: Visit) -> Response:
        chosen = await service.find_version(session, row, product, version)
        versions = await models_service.list_versions(session, row, product=product)
        active = next((v for v in versions if v.is_active), None)
        return seen.page("activate.html", tenant=row, section="models", version=chosen,
                         active=active)

    return await tenant_request(request, tenant, Role.TRAIN, work)


@router.post("/tenants/{tenant}/models/{product}/versions/{version}/activate")
async def activate(request: Request, tenant: str, product: str, version: VersionNumber
                   ) -> Response:
    async def work(session: AsyncSession, row: Tenant, seen: Visit) -> Response:
        await models_service.activate(session, row, product, version)
        return RedirectResponse(tenant_url(row.name, "models") + f"#product-{quote(product)}",
                                status_code=303)

    return await tenant_request(request, tenant, Role.TRAIN, work, form=True)


# -- data --------------------------------------------------------------------------------
@router.get("/tenants/{tenant}/data")
async def data(request: Request, tenant: str) -> Response:
    return await section_page(request, tenant, "data.html", section="data",
                              build=service.data_page)


def _uploads(form: FormData) -> dict[str, UploadFile]:
    found = {name: form.get(field) for name, field in UPLOAD_FIELDS.items()}
    files = {name: upload for name, upload in found.items()
             if isinstance(upload, UploadFile) and upload.filename}
    if SALES_FILE not in files:
        raise InvalidRequest("choose a sales file (date,product,quantity) to upload")
    return files


def _mode(value: object) -> ImportMode:
    try:
        return ImportMode(str(value or ImportMode.MERGE))
    except ValueError:
        raise InvalidRequest(f"mode must be one of {', '.join(ImportMode)}") from None


@router.post("/tenants/{tenant}/data")
async def upload(request: Request, tenant: str) -> Response:
    """A dataset upload, parsed as the API's upload is; a bad file is shown with every
    problem's file, line and column, and nothing is stored."""

    async def work(session: AsyncSession, row: Tenant, seen: Visit) -> Response:
        form = await request.form()
        settings = get_settings(request)
        files = _uploads(form)
        try:
            # CPU-bound for large files: off the event loop, as the API's upload.
            dataset = await asyncio.to_thread(
                service.parse_upload, {name: f.file for name, f in files.items()},
                settings=settings)
        except DatasetProblems as exc:
            page = await service.data_page(session, row, settings=settings)
            return seen.page("data.html", status_code=status_for(exc), tenant=row,
                             section="data", page=page, problems=exc.problems,
                             problems_total=exc.total)
        mode = _mode(form.get("mode"))
        summary = await service.import_upload(
            session, row, dataset, mode=mode, source=("console upload: " + ", ".join(
                f"{name}={f.filename}" for name, f in files.items()))[:500])
        page = await service.data_page(session, row, settings=settings, imported=summary)
        return seen.page("data.html", status_code=201, tenant=row, section="data",
                         page=page, problems=[], problems_total=0)

    return await tenant_request(request, tenant, Role.TRAIN, work, form=True)

