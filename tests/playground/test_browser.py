"""The playground in a real browser: Debian's headless Chromium driven by Selenium, against the
real service (`vidgen serve`) and the Fal simulator. Screenshots are kept as artifacts
(`$PYTEST_ARTIFACTS/playground/`, else the test's tmp_path; the path is printed)."""

import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from app.fal.simulator.process import SimulatorProcess
from tests.support.apps import AppProcess
from tests.support.factories import ApiUser, create_user, grant

# Debian's packages (scripts/test installs them); named explicitly, so Selenium Manager never
# looks for (or downloads) a browser of its own.
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
JWT_SECRET = "playground-test-secret-0123456789abcdef"
# Jobs take ~1 s in the simulator, then the copy of the output; generous for a loaded CI box.
WAIT_S = 60
# A 1x1 PNG as a data: URI, as the page quotes image-to-video before an image is chosen.
STAND_IN_IMAGE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB"
    "0C8AAAAASUVORK5CYII="
)
T2V = "kling-v2-master-t2v"
I2V = "kling-v2.1-standard-i2v"

Service_ = tuple[AppProcess, httpx.AsyncClient]


@pytest.fixture
async def service(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path
) -> AsyncIterator[Service_]:
    app = AppProcess(database_url, simulator, tmp_path, AUTH_JWT_SECRET=JWT_SECRET).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            yield app, client
    finally:
        app.stop()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1200",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    root = os.environ.get("PYTEST_ARTIFACTS")
    directory = Path(root) / "playground" / request.node.name if root else tmp_path / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


class Page:
    """The playground as a person sees it: its controls by label, its state in the DOM."""

    def __init__(self, driver: WebDriver, base_url: str, artifacts: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self.artifacts = artifacts

    def open(self, fragment: str = "") -> None:
        self.driver.get(f"{self.base_url}/playground{fragment}")

    def find(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
        try:
            return WebDriverWait(self.driver, timeout).until(lambda _: condition())
        except TimeoutException:
            self.screenshot("timed-out.png")
            seen = self.state()
            raise AssertionError(f"timed out waiting for {what}; the page: {seen}") from None

    def state(self) -> dict[str, Any]:
        """What a person would see, for a failure's message."""
        return {
            "watched": self.js(
                "const s = document.getElementById('watch-status');"
                "return [s.dataset.videoId, s.dataset.status, s.textContent];"
            ),
            "price": self.find("price").text,
            "problems": self.js(
                "return [...document.querySelectorAll('.problem')].filter(p => p.textContent)"
                ".map(p => p.id + ': ' + p.textContent);"
            ),
            "console": self.console_errors(),
        }

    def attribute(self, element_id: str, name: str) -> str | None:
        return self.find(element_id).get_attribute(name)

    def sign_in(self, key: str) -> None:
        self.wait(lambda: self.find("token").is_displayed(), "the sign-in form")
        self.find("token").send_keys(key, Keys.ENTER)
        self.wait_signed_in()

    def wait_signed_in(self) -> None:
        self.wait(lambda: self.find("workspace").is_displayed(), "the workspace")
        self.wait(lambda: self.attribute("balance", "data-balance"), "the balance")
        self.wait(lambda: self.attribute("price", "data-state") == "ok", "the first price")

    def choose_model(self, model: str) -> None:
        Select(self.find("model")).select_by_value(model)
        self.wait(lambda: self.find("option-fields").get_attribute("data-model") == model, model)

    def type_prompt(self, text: str) -> None:
        prompt = self.find("prompt")
        prompt.clear()
        prompt.send_keys(text)

    def price(self) -> str | None:
        return self.attribute("price", "data-credits")

    def wait_price(self, credits: int) -> None:
        self.wait(
            lambda: self.attribute("price", "data-state") == "ok" and self.price() == str(credits),
            f"the price {credits}",
        )

    def record_statuses(self) -> None:
        """Keeps every status the page shows, so a test can see the live updates went by."""
        self.js(
            """
            window.seenStatuses = [];
            const status = document.getElementById("watch-status");
            new MutationObserver(() => window.seenStatuses.push(status.dataset.status))
              .observe(status, {attributes: true, attributeFilter: ["data-status"]});
            """
        )

    def wait_watched(self, status: str, other_than: str | None = None) -> str:
        def watched() -> str | None:
            shown = self.find("watch-status")
            video_id = shown.get_attribute("data-video-id")
            if shown.get_attribute("data-status") == status and video_id != other_than:
                return video_id
            return None

        video_id: str = self.wait(watched, f"a video {status} in the page")
        return video_id

    def wait_player_loaded(self) -> None:
        self.wait(
            lambda: self.js(
                "const p = document.getElementById('player');"
                "return p.readyState >= 1 && p.duration > 0;"
            ),
            "the video's metadata",
        )

    def wait_problem(self, region: str, code: str) -> WebElement:
        self.wait(lambda: self.attribute(region, "data-code") == code, f"{code} in #{region}")
        element = self.find(region)
        assert element.get_attribute("role") == "alert"
        return element

    def screenshot(self, name: str) -> Path:
        path = self.artifacts / name
        assert self.driver.save_screenshot(str(path))
        print(f"screenshot: {path}")
        return path

    def console_errors(self, *, refused_calls: bool = False) -> list[str]:
        """The page's errors (scripts, CSP violations, failed loads); with `refused_calls`,
        an API call answered 4xx is not one: the test provoked it."""
        refusal = f"{self.base_url}/api/"
        return [
            entry["message"]
            for entry in self.driver.get_log("browser")  # type: ignore[no-untyped-call]
            if entry["level"] == "SEVERE"
            and not (
                refused_calls
                and entry["message"].startswith(refusal)
                and "the server responded with a status of 4" in entry["message"]
            )
        ]


async def quote(client: httpx.AsyncClient, user: ApiUser, **body: Any) -> int:
    response = await client.post("/api/videos/quote", json=body, headers=user.auth)
    assert response.status_code == 200, response.text
    credits: int = response.json()["credits"]
    return credits


async def test_a_person_prices_creates_watches_and_plays_videos(
    service: Service_, browser: WebDriver, artifacts: Path, tmp_path: Path
) -> None:
    app, client = service
    demo = await create_user(client, credits=5_000)
    page = Page(browser, app.url, artifacts)
    page.open()

    # Sign in with the key through the form; it stays in this tab only.
    page.sign_in(demo.api_key)
    assert page.js("return sessionStorage.getItem('vidgen.token')") == demo.api_key
    assert page.attribute("balance", "data-balance") == "5000"

    # The form is the model's: only the fields it takes, its values, its defaults.
    models = {
        m["id"]: m for m in (await client.get("/api/models", headers=demo.auth)).json()["data"]
    }
    page.choose_model(T2V)
    shown = page.js(
        "return [...document.querySelectorAll('#option-fields [name]')].map(c => c.name)"
    )
    assert set(shown) == set(models[T2V]["parameters"]) - {"prompt", "image_url"}
    duration = Select(page.find("opt-duration"))
    assert [o.get_attribute("value") for o in duration.options] == ["5", "10"]
    assert duration.first_selected_option.get_attribute("value") == "5"
    assert not page.find("image-field").is_displayed()

    # The price follows the options, from the API's quote.
    page.wait_price(await quote(client, demo, model=T2V, prompt="x"))
    duration.select_by_value("10")
    page.wait_price(await quote(client, demo, model=T2V, prompt="x", duration=10))
    page.type_prompt("A red fox trotting through fresh snow at dawn, cinematic")

    # Keyboard only: Tab to the create button, Enter.
    page.find("prompt").click()
    for _ in range(30):
        if page.js("return document.activeElement.id") == "create":
            break
        ActionChains(browser).send_keys(Keys.TAB).perform()
    assert page.js("return document.activeElement.id") == "create"
    page.record_statuses()
    browser.switch_to.active_element.send_keys(Keys.ENTER)

    # Watched live until completed, then played from our copy, seekable.
    text_video = page.wait_watched("completed")
    seen = page.js("return window.seenStatuses")
    assert {"pending", "queued", "processing"} & set(seen[:-1]), seen
    page.wait_player_loaded()
    poster = page.attribute("player", "poster") or ""
    assert poster.startswith(f"{app.url}/media/"), poster
    page.js("document.getElementById('player').currentTime = 1.0")
    page.wait(
        lambda: page.js(
            "const p = document.getElementById('player');"
            "return !p.seeking && p.currentTime >= 0.9 && p.seekable.length > 0;"
        ),
        "a seek to 1 s",
    )
    page.wait(
        lambda: browser.find_elements(
            By.CSS_SELECTOR, f'#ledger tr[data-kind="debit"][data-video-id="{text_video}"]'
        ),
        "the debit in the ledger",
    )
    page.screenshot("1-text-to-video.png")

    # Image-to-video: upload a PNG, see it, double-click create.
    page.choose_model(I2V)
    assert page.find("image-field").is_displayed()
    # Priced before any image is chosen (the price does not depend on it).
    page.wait_price(await quote(client, demo, model=I2V, prompt="x", image_url=STAND_IN_IMAGE))
    still = tmp_path / "still.png"
    Image.radial_gradient("L").resize((640, 360)).convert("RGB").save(still)
    page.find("image").send_keys(str(still))
    page.wait(
        lambda: page.js(
            "const i = document.getElementById('image-preview');"
            "return !i.hidden && i.complete && i.naturalWidth === 640;"
        ),
        "the uploaded image's preview",
    )
    page.type_prompt("The camera slowly pushes in as snow starts to fall")
    page.wait(lambda: page.attribute("price", "data-state") == "ok", "the image-to-video price")
    ActionChains(browser).double_click(page.find("create")).perform()
    image_video = page.wait_watched("completed", other_than=text_video)
    page.wait_player_loaded()
    page.wait(
        lambda: (
            len(browser.find_elements(By.CSS_SELECTOR, '#videos li[data-status="completed"]')) == 2
        ),
        "both videos completed in the list",
    )
    page.wait(
        lambda: browser.find_elements(
            By.CSS_SELECTOR, f'#ledger tr[data-kind="debit"][data-video-id="{image_video}"]'
        ),
        "the second debit in the ledger",
    )
    page.js("window.scrollTo(0, 0)")
    page.screenshot("2-image-to-video.png")

    # The double click made one job, charged once.
    listed = (await client.get("/api/videos", headers=demo.auth)).json()["data"]
    assert [v["id"] for v in listed] == [image_video, text_video]
    assert listed[0]["image_url"].startswith("upload:")
    assert all(v["status"] == "completed" for v in listed)
    ledger = (await client.get("/api/credits", headers=demo.auth)).json()
    debits = [row for row in ledger["data"] if row["kind"] == "debit"]
    assert sorted(row["video_id"] for row in debits) == sorted([image_video, text_video])
    charged = sum(v["credits_charged"] for v in listed)
    assert ledger["balance"] == 5_000 - charged
    page.wait(
        lambda: page.attribute("balance", "data-balance") == str(ledger["balance"]),
        "the balance after both",
    )

    # Every control has a label; nothing failed in the page (a CSP violation is an error).
    unlabelled = page.js(
        """
        return [...document.querySelectorAll('input, select, textarea, button')]
          .filter(c => c.offsetParent !== null)
          .filter(c => !(c.labels && c.labels.length) && !c.getAttribute('aria-label')
                       && !(c.tagName === 'BUTTON' && c.textContent.trim()))
          .map(c => c.outerHTML);
        """
    )
    assert unlabelled == []
    assert page.console_errors() == []

    # Readable at 320 px: no horizontal scroll.
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 320, "height": 900, "deviceScaleFactor": 1, "mobile": True},
    )
    page.wait(lambda: page.js("return window.innerWidth") == 320, "a 320 px viewport")
    assert page.js("return document.documentElement.scrollWidth") <= 320
    page.screenshot("3-narrow-320px.png")


async def test_problems_are_shown_in_words_with_their_code(
    service: Service_, browser: WebDriver, artifacts: Path
) -> None:
    app, client = service
    demo = await create_user(client, credits=5_000)
    page = Page(browser, app.url, artifacts)

    # A wrong key: the page says so, and stays on the sign-in form.
    page.open()
    page.find("token").send_keys("not-a-key", Keys.ENTER)
    page.wait_problem("page-problem", "unauthorized")
    assert page.find("sign-in").is_displayed()
    assert page.js("return sessionStorage.getItem('vidgen.token')") is None

    # An option outside the model's range: the live price and the create both say why.
    page.sign_in(demo.api_key)
    page.choose_model(T2V)
    page.type_prompt("A lighthouse in a storm")
    page.find("opt-cfg_scale").clear()
    page.find("opt-cfg_scale").send_keys("5")
    quoted = page.wait_problem("quote-problem", "unsupported_value")
    assert "cfg_scale" in quoted.text
    page.find("create").click()
    refused = page.wait_problem("create-problem", "unsupported_value")
    request_id = refused.find_element(By.CSS_SELECTOR, ".request-id").text
    assert len(request_id) >= 16
    page.screenshot("4-unsupported-value.png")

    # Arriving with a JWT in the fragment (a frontend's sign-in): too few credits to create.
    poor = await create_user(client)
    await grant(client, poor, 10)
    token = jwt.encode(
        {"sub": str(poor.id), "exp": int(time.time()) + 600, "jti": uuid.uuid4().hex},
        JWT_SECRET,
        algorithm="HS256",
    )
    page.find("sign-out").click()
    page.wait(lambda: page.find("sign-in").is_displayed(), "signed out")
    browser.get("about:blank")
    page.open(f"#token={token}")
    page.wait_signed_in()
    assert "token" not in browser.current_url
    assert page.js("return sessionStorage.getItem('vidgen.token')") == token
    assert page.attribute("balance", "data-balance") == "10"
    page.choose_model(T2V)
    page.type_prompt("A lighthouse in a storm")
    page.find("create").click()
    short = page.wait_problem("create-problem", "insufficient_credits")
    assert "insufficient_credits" in short.text
    page.screenshot("5-insufficient-credits.png")
    listed = (await client.get("/api/videos", headers=poor.auth)).json()["data"]
    assert listed == []
    assert (await client.get("/api/videos", headers=demo.auth)).json()["data"] == []
    assert page.console_errors(refused_calls=True) == []


async def test_a_running_video_is_canceled_and_refunded(
    service: Service_, browser: WebDriver, artifacts: Path
) -> None:
    app, client = service
    demo = await create_user(client, credits=1_000)
    page = Page(browser, app.url, artifacts)
    page.open()
    page.sign_in(demo.api_key)
    page.choose_model(T2V)
    page.type_prompt("A clock that never stops #hold")  # the simulator runs it until canceled
    page.find("create").click()
    video_id = page.wait_watched("processing")
    assert page.find("cancel").is_displayed()
    page.find("cancel").click()
    assert page.wait_watched("canceled") == video_id
    assert not page.find("cancel").is_displayed()
    assert not page.find("player").is_displayed()
    page.wait(
        lambda: browser.find_elements(
            By.CSS_SELECTOR, f'#ledger tr[data-kind="refund"][data-video-id="{video_id}"]'
        ),
        "the refund in the ledger",
    )
    page.wait(lambda: page.attribute("balance", "data-balance") == "1000", "the balance back")
    page.screenshot("6-canceled.png")
    assert page.console_errors() == []
