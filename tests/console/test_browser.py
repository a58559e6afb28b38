"""The console in a real browser: Debian's chromium driven by Playwright (no downloaded
browser). Sign in, read a product's chart, roll a version back, upload a bad file, start
a job and watch its progress arrive without a reload, cancel one, and fail to see another
tenant's data. Every page is saved as a screenshot under the test's output
(`screenshots/`, the path is printed) to be looked at."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from api.conftest import RunningServer
from conftest import cli_command, settings_env
from ovencast.console.service import FORECAST_DAYS
from ovencast.settings import Settings

from .conftest import CHROMIUM, KIEL, TINY, Keys
from .test_http import kiel_job_id

pytestmark = pytest.mark.postgres

JOB_TIMEOUT_MS = 180_000
# Pages that forecast or score compute on a 2-core machine shared with other work.
expect.set_options(timeout=20_000)
BAD_SALES = b"date,product,quantity\n2024-03-01,bread,12\n2024-03-02,bread,lots\n"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        reason = (f"chromium is not installed at {CHROMIUM} "
                  "(apt-get install -y chromium chromium-driver)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the console's browser tests need chromium in CI: {reason}")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        # CI runs as root in a container: chromium's sandbox cannot start there, and
        # /dev/shm may be small.
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("screenshots")
    print(f"console screenshots: {directory}")
    return directory


class Session:
    """One browser context signed in with one key."""

    def __init__(self, browser: Browser, server: RunningServer, key: str,
                 screenshots: Path) -> None:
        # A tablet in the shop: 1024 x 768 CSS pixels.
        self.context: BrowserContext = browser.new_context(
            base_url=server.base_url, viewport={"width": 1024, "height": 768})
        self.page: Page = self.context.new_page()
        self.screenshots = screenshots
        # Nothing may come from anywhere but the server (no CDN: a bakery may be offline),
        # and nothing may be refused by the pages' Content-Security-Policy.
        self.elsewhere: list[str] = []
        self.refused: list[str] = []
        self.page.on("request", lambda request: None if request.url.startswith(
            (server.base_url, "data:")) else self.elsewhere.append(request.url))
        self.page.on("console", lambda message: self.refused.append(message.text)
                     if "Content Security Policy" in message.text else None)
        self.page.goto("/")
        expect(self.page).to_have_url(f"{server.base_url}/sign-in")
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()

    def shot(self, name: str) -> None:
        self.page.screenshot(path=self.screenshots / f"{name}.png", full_page=True)


OpenSession = Callable[[str], Session]


@pytest.fixture
def open_session(browser: Browser, console_server: RunningServer,
                 screenshots: Path) -> Iterator[OpenSession]:
    sessions: list[Session] = []

    def make(key: str) -> Session:
        sessions.append(Session(browser, console_server, key, screenshots))
        return sessions[-1]

    yield make
    for session in sessions:
        session.context.close()
    assert [s.elsewhere for s in sessions] == [[] for _ in sessions]
    assert [s.refused for s in sessions] == [[] for _ in sessions]


def test_sign_in_and_the_tenant_overview(open_session: OpenSession, keys: Keys) -> None:
    admin = open_session(keys.admin)
    expect(admin.page.get_by_role("heading", name="Bakeries")).to_be_visible()
    admin.shot("tenants")
    admin.page.get_by_role("link", name=KIEL).click()
    expect(admin.page.get_by_role("heading", name=f"{KIEL}: what to bake")).to_be_visible()
    rows = admin.page.locator("table.products tbody tr")
    expect(rows).to_have_count(6)
    rolls = admin.page.locator('tr[data-product="rolls"]')
    expect(rolls).to_contain_text("version 3")
    expect(rolls.locator("td").nth(3)).to_have_text("1")  # the Croston challenger
    # The expected accuracy from the backtest, the realised one from the saved forecast
    # of July scored against July's sales, in plain words.
    expect(rolls.locator("td").nth(1)).to_contain_text("typically off by")
    expect(rolls.locator("td").nth(2)).to_contain_text("typically off by")
    expect(admin.page.locator(".last-job")).to_contain_text("succeeded")
    drifting = admin.page.locator(".warnings li.drift")
    expect(drifting.first).to_contain_text("times its backtest WAPE")
    assert drifting.count() == admin.page.locator("table.products .badge.warn").count()
    admin.shot("overview")


def test_product_page_chart_has_a_point_per_forecast_day(open_session: OpenSession,
                                                          keys: Keys) -> None:
    baker = open_session(keys.kiel_read)
    page = baker.page
    page.get_by_role("link", name="rolls", exact=True).click()
    expect(page.get_by_role("heading", name=f"rolls: the next {FORECAST_DAYS} days")
           ).to_be_visible()
    chart = page.locator("svg#forecast-chart")
    expect(chart).to_be_visible()
    points = chart.locator("circle.forecast-point")
    expect(points).to_have_count(FORECAST_DAYS)
    expect(page.locator("table.forecast tbody tr")).to_have_count(FORECAST_DAYS)
    expect(chart.locator("polygon.band")).to_have_count(1)
    assert chart.locator("circle.sold-point").count() > 40  # 8 weeks of sales
    dates = [points.nth(i).get_attribute("data-date") for i in range(FORECAST_DAYS)]
    rows = page.locator("table.forecast tbody tr")
    assert dates == [rows.nth(i).get_attribute("data-date") for i in range(FORECAST_DAYS)]
    baker.shot("product")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == dates
    # Every product of the tenant is forecast for the same dates.
    page.goto(f"/tenants/{KIEL}/products/bread")
    other = page.locator("svg#forecast-chart circle.forecast-point")
    expect(other).to_have_count(FORECAST_DAYS)
    assert [other.nth(i).get_attribute("data-date") for i in range(FORECAST_DAYS)] == dates


def test_roll_back_a_version_and_see_it_active(open_session: OpenSession, keys: Keys) -> None:
    operator = open_session(keys.kiel_train)
    page = operator.page
    page.get_by_role("link", name="Models").click()
    versions = page.locator('table.versions[data-product="rolls"]')
    expect(versions.locator("tr.standing-active")).to_have_attribute("data-version", "3")
    expect(versions.locator('tr[data-version="2"] .standing')).to_have_text("challenger")
    # Champion against the challenger on the days both forecast and sales came in.
    expect(page.locator("#product-rolls .comparison")).to_contain_text(
        "Champion against challenger version 2 on 28 days of real sales")
    current, other = 3, 1
    operator.shot("models")
    page.get_by_role("link", name=f"Make version {other} of rolls active").click()
    expect(page.get_by_role("heading", name=f"Make version {other} of rolls active?")
           ).to_be_visible()
    operator.shot("activate")
    page.get_by_role("button", name=f"Yes, make version {other} active").click()
    row = page.locator(f'table.versions[data-product="rolls"] tr[data-version="{other}"]')
    expect(row).to_have_class("standing-active")
    expect(row.locator(".standing")).to_have_text("active")
    expect(page.locator(f'table.versions[data-product="rolls"] tr[data-version="{current}"]'
                        ' .standing')).not_to_have_text("active")
    page.goto(f"/tenants/{KIEL}")
    expect(page.locator('tr[data-product="rolls"]')).to_contain_text(f"version {other}")


def test_a_bad_upload_names_row_and_column(open_session: OpenSession, keys: Keys) -> None:
    operator = open_session(keys.tiny_train)
    page = operator.page
    page.get_by_role("link", name="Data").click()
    operator.shot("data")
    page.get_by_label("Sales").set_input_files(
        files=[{"name": "sales.csv", "mimeType": "text/csv", "buffer": BAD_SALES}])
    page.get_by_role("button", name="Upload").click()
    problems = page.locator("table.problem-list tbody tr")
    expect(problems).to_have_count(1)
    cells = problems.first.locator("td")
    expect(cells.nth(0)).to_have_text("sales.csv")
    expect(cells.nth(1)).to_have_text("3")
    expect(cells.nth(2)).to_have_text("quantity")
    expect(page.get_by_role("heading", name="The upload was refused")).to_be_visible()
    operator.shot("data-refused")
    good = b"date,product,quantity\n" + b"".join(
        f"2024-01-{day:02d},cake,{day % 7 + 3}\n".encode() for day in range(1, 32))
    page.get_by_label("Sales").set_input_files(
        files=[{"name": "sales.csv", "mimeType": "text/csv", "buffer": good}])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("p.ok")).to_contain_text("Imported 31 sales rows of 1 products")
    # The validation report per product, before any training.
    report = page.locator("table.report")
    expect(report.locator('tr[data-product="cake"]')).to_contain_text("31")
    expect(report.locator('tr[data-product="bread"]')).to_contain_text("ready")
    operator.shot("data-imported")


class Worker:
    """An `ovencast worker` process on the console's database."""

    def __init__(self, settings: Settings, log: Path) -> None:
        with log.open("wb") as out:
            self.process = subprocess.Popen(cli_command(["worker", "--name", "console"]),
                                            env=settings_env(settings), stdout=out,
                                            stderr=subprocess.STDOUT)
        self.log = log

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_job(page: Page, product: str) -> None:
    page.goto(f"/tenants/{TINY}/jobs")
    page.get_by_label(product, exact=True).check()
    page.get_by_label("Models").select_option("seasonal_naive")
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#job-status")).to_have_text("queued")


def test_a_job_cancelled_and_a_job_followed_live(open_session: OpenSession, keys: Keys,
                                                 console_settings: Settings,
                                                 tmp_path: Path) -> None:
    operator = open_session(keys.tiny_train)
    page = operator.page
    # No worker yet: the jobs stay queued until cancelled, or until the worker starts.
    start_job(page, "bread")
    page.get_by_role("button", name="Cancel this job").click()
    expect(page.locator("#job-status")).to_have_text("cancelled")
    start_job(page, "rolls")
    expect(page.locator("#live")).to_contain_text("Following job")
    expect(page.locator("#runs tr.empty")).to_have_count(1)
    page.evaluate("window.sameDocument = true")
    operator.shot("job-queued")
    worker = Worker(console_settings, tmp_path / "worker.log")
    try:
        expect(page.locator("#job-status")).to_have_text("succeeded",
                                                         timeout=JOB_TIMEOUT_MS)
    except AssertionError:
        print(worker.log.read_text(errors="replace")[-4000:])
        raise
    finally:
        worker.stop()
    expect(page.locator("#runs tr.empty")).to_have_count(0)
    run = page.locator('#runs tr[data-product="rolls"]')
    expect(run.locator(".run-status")).to_have_text("trained")
    expect(run.locator(".run-progress")).to_contain_text("version 1")
    expect(page.locator("#live")).to_contain_text("The job ended: succeeded")
    # The progress came over the WebSocket into this very document: no reload.
    assert page.evaluate("window.sameDocument") is True
    operator.shot("job-finished")
    page.get_by_role("navigation").get_by_role("link", name="Training").click()
    expect(page.locator("table.jobs tbody tr")).to_have_count(2)
    expect(page.locator("table.jobs tbody tr").nth(1)).to_contain_text("cancelled by request")
    operator.shot("jobs")
    # The ended job's page, opened afresh, has the data checks the job stored.
    page.locator("table.jobs tbody tr").first.get_by_role("link").click()
    expect(page.locator("ul.issues")).to_contain_text("recommended 90+")
    expect(page.locator("#live")).to_have_text("This job has ended.")


def test_another_tenants_data_cannot_be_seen(open_session: OpenSession, keys: Keys,
                                             console_settings: Settings) -> None:
    stranger = open_session(keys.tiny_train)
    page = stranger.page
    job_id = kiel_job_id(console_settings)
    for path in (f"/tenants/{KIEL}", f"/tenants/{KIEL}/products/rolls",
                 f"/tenants/{KIEL}/models", f"/tenants/{KIEL}/jobs/{job_id}",
                 f"/tenants/{TINY}/jobs/{job_id}", f"/tenants/{KIEL}/data"):
        answer = page.goto(path)
        assert answer is not None
        assert answer.status == 404, path
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        expect(page.locator("main")).not_to_contain_text("typically off by")
        expect(page.locator("main")).not_to_contain_text("croissant")
    stranger.shot("other-tenant")
    csv = page.request.get(f"/tenants/{KIEL}/products/rolls/forecast.csv")
    assert csv.status == 404
    assert "rolls," not in csv.text()
    # The job-events WebSocket refuses the other tenant's job to this session too.
    closed = page.evaluate("""(url) => new Promise((resolve) => {
        const socket = new WebSocket(url);
        let first = null;
        socket.onmessage = (m) => { first = first || JSON.parse(m.data); };
        socket.onclose = (c) => resolve({code: c.code, first});
    })""", f"{page.url.split('/tenants')[0].replace('http', 'ws')}"
            f"/api/v1/training-jobs/{job_id}/events")
    assert closed["code"] == 4404
    assert closed["first"]["type"] == "error"
