import { test, expect, openShop, add, placeOrder } from "./fixtures";
import { BASE } from "../playwright.config";

// The operator endpoint's token on the main end-to-end server (playwright.config.ts).
const OPS = { authorization: "Bearer e2e-ops-token-for-the-refund-test" };

test("a shopper sees a partial refund on the success page and in My orders, in both languages", async ({ page, context, request }) => {
  await openShop(page);
  await add(page, "TEA-OOLONG", 1);
  const orderNo = await placeOrder(page);
  const phone = await context.newPage();
  const scanUrl = (await page.getByTestId("sandbox-scan").getAttribute("href"))!;
  await phone.goto(scanUrl);
  await phone.getByRole("button", { name: /^Pay/ }).click();
  await expect(page).toHaveURL(new RegExp(`/orders/${orderNo}/paid$`), { timeout: 15_000 });
  await expect(page.getByTestId("refunded")).toHaveCount(0);

  // Shop staff give back ¥12.00 of the ¥68.00 (a broken lid); WeChat returns it.
  const asked = await request.post(`/ops/orders/${orderNo}/refunds`, {
    headers: OPS,
    data: { amount_fen: 1200, reason: "broken lid" },
  });
  expect(asked.status()).toBe(202);
  await expect
    .poll(async () => (await (await request.get(`/ops/orders/${orderNo}`, { headers: OPS })).json()).refunds[0].status, { timeout: 15_000 })
    .toBe("success");

  await page.reload();
  await expect(page.getByTestId("paid-amount")).toHaveText("¥68.00");
  await expect(page.getByTestId("refunded")).toHaveText("Refunded ¥12.00");
  await page.goto("/orders");
  const line = page.locator(`[data-order="${orderNo}"]`);
  await expect(line.getByTestId("order-refunded")).toHaveText("Refunded ¥12.00");

  await context.addCookies([{ name: "lang", value: "zh-CN", url: BASE }]);
  await page.goto(`/orders/${orderNo}/paid`);
  await expect(page.getByTestId("refunded")).toHaveText("已退款 ¥12.00");
  await page.goto("/orders");
  await expect(page.locator(`[data-order="${orderNo}"]`).getByTestId("order-refunded")).toHaveText("已退款 ¥12.00");
  // The phone shows the refund as WeChat's app would.
  await phone.goto(scanUrl);
  await expect(phone.locator("body")).toContainText("12.00");
});
