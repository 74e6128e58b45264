import { test, expect, openShop, add, placeOrder } from "./fixtures";

test("a shopper chooses goods, scans the QR code, pays and lands on the success page", async ({ page, context }) => {
  await openShop(page);
  await add(page, "TEA-OOLONG", 2);
  await expect(page.getByTestId("cart-total")).toHaveText("¥136.00");
  const orderNo = await placeOrder(page);

  // The checkout shows the QR code (inline SVG), the amount and the order number.
  await expect(page.getByTestId("qr").locator("svg")).toBeVisible();
  await expect(page.getByTestId("amount")).toHaveText("¥136.00");
  await expect(page.getByTestId("status")).toContainText("Waiting for payment");
  await expect(page.getByTestId("countdown")).toHaveText(/^1[34]:\d\d$/);

  // The shopper's phone: the sandbox shows what WeChat would, and the shopper pays.
  const scanUrl = await page.getByTestId("sandbox-scan").getAttribute("href");
  expect(scanUrl).toMatch(/^\/sandbox\/scan\?code_url=weixin%3A%2F%2Fwxpay%2Fbizpayurl%3Fpr%3D/);
  const phone = await context.newPage();
  await phone.goto(scanUrl!);
  await expect(phone.getByTestId("phone-amount")).toHaveText("¥136.00");
  await expect(phone.locator("body")).toContainText(orderNo);
  // The shop placed it over the API the run is configured for (the v3 run's shop speaks v3).
  await expect(phone.getByTestId("phone-api")).toHaveText(process.env.SCANPAY_WXPAY_API === "v3" ? "v3" : "v2");
  await phone.getByRole("button", { name: /^Pay/ }).click();
  await expect(phone.getByTestId("phone-result")).toHaveText("Payment complete");

  // The checkout page notices by itself (status polling) and moves on.
  await expect(page).toHaveURL(new RegExp(`/orders/${orderNo}/paid$`), { timeout: 15_000 });
  await expect(page.getByTestId("paid-amount")).toHaveText("¥136.00");
  await expect(page.getByTestId("transaction-id")).toHaveText(/^4200\d{24}$/);
  await expect(page.getByTestId("paid-at")).toHaveText(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
});

test("a declined order stays on the checkout page, waiting", async ({ page, context }) => {
  await openShop(page);
  await add(page, "PIN-PANDA", 1);
  const orderNo = await placeOrder(page);
  const phone = await context.newPage();
  await phone.goto((await page.getByTestId("sandbox-scan").getAttribute("href"))!);
  await phone.getByRole("button", { name: "Decline" }).click();
  await expect(phone.getByTestId("phone-result")).toHaveText("Payment cancelled");

  const before = await page.getByTestId("countdown").textContent();
  // Several poll periods later the page is still here, still waiting, and the clock has moved.
  await page.waitForTimeout(7_000);
  await expect(page).toHaveURL(new RegExp(`/checkout/${orderNo}$`));
  await expect(page.getByTestId("status")).toContainText("Waiting for payment");
  await expect(page.getByTestId("countdown")).not.toHaveText(before!);
  await expect(page.getByTestId("qr").locator("svg")).toBeVisible();
});

test("another visitor cannot see the order", async ({ page, browser }) => {
  await openShop(page);
  await add(page, "BUN-RED", 1);
  const orderNo = await placeOrder(page);
  const stranger = await browser.newContext();
  const other = await stranger.newPage();
  const resp = await other.goto(`/checkout/${orderNo}`);
  expect(resp!.status()).toBe(404);
  await expect(other.getByTestId("not-found")).toBeVisible();
  await expect(other.locator("body")).not.toContainText("¥24.50");
  await stranger.close();
});

test("when status polls keep failing the checkout says so, keeps trying and recovers", async ({ page, errors }) => {
  await openShop(page);
  await add(page, "PIN-PANDA", 1);
  await placeOrder(page);
  await expect(page.getByTestId("connection-lost")).toHaveCount(0);
  // The server is unreachable for a while (a restart, a lost network).
  await page.route("**/api/order_status", (route) => route.fulfill({ status: 503, body: "unavailable" }));
  await expect(page.getByTestId("connection-lost")).toBeVisible({ timeout: 10_000 });
  await expect(page.getByTestId("connection-lost")).toContainText("still trying");
  await page.unroute("**/api/order_status");
  await expect(page.getByTestId("connection-lost")).toHaveCount(0, { timeout: 7_000 });
  await expect(page.getByTestId("status")).toContainText("Waiting for payment");
  // The refused polls are the only errors the page may log.
  const unexpected = errors.filter((e) => !/503|order_status/.test(e));
  errors.splice(0, errors.length, ...unexpected);
});
