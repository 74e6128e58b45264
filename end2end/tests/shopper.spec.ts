import { devices } from "@playwright/test";
import { test, expect, openShop, add, placeOrder } from "./fixtures";

/** Pays the checkout's order on the sandbox phone. */
async function payOnPhone(page: import("@playwright/test").Page) {
  const phone = await page.context().newPage();
  await phone.goto((await page.getByTestId("sandbox-scan").getAttribute("href"))!);
  await phone.getByRole("button", { name: /^Pay/ }).click();
  await expect(phone.getByTestId("phone-result")).toHaveText("Payment complete");
  await phone.close();
}

test("my orders lists the session's orders newest first; a finished one can be hidden", async ({ page }) => {
  await openShop(page);
  await add(page, "PIN-PANDA", 1);
  const first = await placeOrder(page);
  await payOnPhone(page);
  await expect(page).toHaveURL(new RegExp(`/orders/${first}/paid$`), { timeout: 15_000 });

  await openShop(page);
  await add(page, "BUN-RED", 2);
  const second = await placeOrder(page);

  await page.getByTestId("nav-orders").click();
  await expect(page).toHaveURL(/\/orders$/);
  const lines = page.getByTestId("order-line");
  await expect(lines).toHaveCount(2);
  await expect(lines.nth(0)).toHaveAttribute("data-order", second);
  await expect(lines.nth(0).getByTestId("order-status")).toHaveText("Waiting for payment");
  await expect(lines.nth(0)).toContainText("¥49.00");
  await expect(lines.nth(0).getByTestId("order-hide")).toHaveCount(0); // still in play
  await expect(lines.nth(1)).toHaveAttribute("data-order", first);
  await expect(lines.nth(1).getByTestId("order-status")).toHaveText("Paid");
  await expect(lines.nth(1)).toContainText(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(Beijing time\)/);

  // The pending one links back to its checkout.
  await expect(lines.nth(0).getByTestId("order-open")).toHaveAttribute("href", `/checkout/${second}`);

  // Hide the paid one: gone from the list, and still gone after a reload.
  await lines.nth(1).getByTestId("order-hide").click();
  await expect(lines).toHaveCount(1);
  await expect(lines.nth(0)).toHaveAttribute("data-order", second);
  await page.reload();
  await expect(page.getByTestId("order-line")).toHaveCount(1);

  // The hidden order still exists: its result page still answers its owner.
  await page.goto(`/orders/${first}/paid`);
  await expect(page.getByTestId("paid")).toBeVisible();

  // Another visitor sees none of it.
  const stranger = await page.context().browser()!.newContext();
  const other = await stranger.newPage();
  await other.goto("/orders");
  await expect(other.getByTestId("no-orders")).toBeVisible();
  await stranger.close();
});

test("opening a paid order's checkout again goes straight to its result", async ({ page }) => {
  await openShop(page);
  await add(page, "PIN-PANDA", 1);
  const orderNo = await placeOrder(page);
  await payOnPhone(page);
  await expect(page).toHaveURL(new RegExp(`/orders/${orderNo}/paid$`), { timeout: 15_000 });
  // A bookmark or a typed address: the server redirects.
  const resp = await page.goto(`/checkout/${orderNo}`);
  expect(resp!.request().redirectedFrom()?.url()).toContain(`/checkout/${orderNo}`);
  await expect(page).toHaveURL(new RegExp(`/orders/${orderNo}/paid$`));
  await expect(page.getByTestId("paid")).toBeVisible();
  // Back from the result does not land on a dead checkout.
  await page.goBack();
  await expect(page).not.toHaveURL(new RegExp(`/checkout/${orderNo}$`));
});

test("the cart survives a reload and the back button, and is empty once ordered", async ({ page }) => {
  await openShop(page);
  await add(page, "PIN-PANDA", 2);
  await page.reload();
  await expect(page.locator("body[data-hydrated]")).toHaveCount(1);
  const pin = page.locator('[data-sku="PIN-PANDA"]');
  await expect(pin.getByTestId("qty")).toHaveText("2");
  await expect(page.getByTestId("cart-total")).toHaveText("¥2.02");
  await placeOrder(page);
  await page.goBack();
  await expect(page.locator("body[data-hydrated]")).toHaveCount(1);
  await expect(pin.getByTestId("qty")).toHaveText("0");
  await expect(page.getByTestId("place-order")).toBeDisabled();
  // Another tab has its own cart.
  const other = await page.context().newPage();
  await other.goto("/");
  await expect(other.locator("body[data-hydrated]")).toHaveCount(1);
  await add(other, "BUN-RED", 1);
  await expect(pin.getByTestId("qty")).toHaveText("0");
  await other.close();
});

test("polling pauses while the tab is hidden and polls at once when it is shown", async ({ page }) => {
  await openShop(page);
  await add(page, "PIN-PANDA", 1);
  await placeOrder(page);
  const polls: number[] = [];
  page.on("request", (r) => {
    if (r.url().endsWith("/api/order_status")) polls.push(Date.now());
  });
  await expect.poll(() => polls.length, { timeout: 8_000 }).toBeGreaterThan(0); // polling while visible

  const setHidden = (hidden: boolean) =>
    page.evaluate((h) => {
      Object.defineProperty(document, "hidden", { configurable: true, get: () => h });
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (h ? "hidden" : "visible") });
      document.dispatchEvent(new Event("visibilitychange", { bubbles: true }));
    }, hidden);
  await setHidden(true);
  await page.waitForTimeout(500); // a poll already in flight may land
  const before = polls.length;
  await page.waitForTimeout(7_000); // more than two periods
  expect(polls.length, "no polls while hidden").toBe(before);

  const shownAt = Date.now();
  await setHidden(false);
  await expect.poll(() => polls.filter((t) => t >= shownAt).length, { timeout: 1_500 }).toBeGreaterThan(0);
  expect(polls.find((t) => t >= shownAt)! - shownAt, "polled at once").toBeLessThan(1_000);
  await expect(page.getByTestId("status")).toContainText("Waiting for payment");
});

test.describe("on a phone 320 px wide", () => {
  const { defaultBrowserType: _, ...pixel } = devices["Pixel 5"]; // stays on the configured chromium
  test.use({ ...pixel, viewport: { width: 320, height: 640 } });

  test("the checkout says the code cannot be scanned from this phone, and nothing overflows", async ({ page }) => {
    await openShop(page);
    await add(page, "TEA-OOLONG", 1);
    const orderNo = await placeOrder(page);
    const notice = page.getByTestId("phone-notice");
    await expect(notice).toBeVisible();
    await expect(notice).toContainText("cannot scan a code shown on the phone it runs on");
    await expect(page.getByTestId("phone-order-no")).toHaveText(orderNo);
    await expect(notice).toContainText("¥68.00");
    for (const path of [page.url(), "/", "/orders"]) {
      await page.goto(path);
      await expect(page.locator("body[data-hydrated]")).toHaveCount(1);
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      expect(width, `no sideways scrolling on ${path}`).toBeLessThanOrEqual(320);
    }
  });
});

test("on a laptop the phone notice stays out of the way", async ({ page }) => {
  await openShop(page);
  await add(page, "PIN-PANDA", 1);
  await placeOrder(page);
  await expect(page.getByTestId("phone-notice")).toBeHidden();
});

test("the front end's files are hashed, compressed and kept; pages are compressed and private", async ({ page, request }) => {
  const resp = await page.goto("/");
  expect(resp!.headers()["content-encoding"], "the page is compressed").toMatch(/^(br|gzip)$/);
  expect(resp!.headers()["cache-control"]).toBe("private, no-store");
  const html = await resp!.text();
  const files = [...html.matchAll(/\/pkg\/scanpay\.[\w-]+\.(?:js|wasm|css)/g)].map((m) => m[0]);
  expect(new Set(files.map((f) => f.split(".").pop())), "js, wasm and css by hashed names").toEqual(new Set(["js", "wasm", "css"]));
  for (const f of new Set(files)) {
    const r = await request.get(f, { headers: { "accept-encoding": "br, gzip" } });
    expect(r.status(), f).toBe(200);
    expect(r.headers()["content-encoding"], f).toBe("br");
    expect(r.headers()["cache-control"], f).toBe("public, max-age=31536000, immutable");
  }
  // The QR and the amount are in the server's HTML, before any WASM runs.
  await openShop(page);
  await add(page, "PIN-PANDA", 1);
  const orderNo = await placeOrder(page);
  const raw = await page.request.get(`/checkout/${orderNo}`); // with the shopper's cookie
  const body = await raw.text();
  expect(body).toContain("<svg");
  expect(body).toContain("¥1.01");
});
