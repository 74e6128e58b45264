import { test, expect, openShop, add, placeOrder, noSeriousViolations } from "./fixtures";
import { FAST_PORT } from "../playwright.config";

/** Pays the checkout's order on the sandbox phone, which speaks Chinese to this browser. */
async function payOnPhoneInChinese(page: import("@playwright/test").Page) {
  const phone = await page.context().newPage();
  await phone.goto((await page.getByTestId("sandbox-scan").getAttribute("href"))!);
  await expect(phone.locator("html")).toHaveAttribute("lang", "zh-CN");
  await expect(phone).toHaveTitle(/确认付款/);
  await expect(phone.locator("body")).toContainText("付款给");
  await noSeriousViolations(phone, "the sandbox phone in Chinese");
  await phone.getByRole("button", { name: /^支付 ¥/ }).click();
  await expect(phone.getByTestId("phone-result")).toHaveText("支付成功");
  await phone.close();
}

test.describe("a browser that prefers Chinese", () => {
  test.use({ locale: "zh-CN" });

  test("the shopper walks through in Simplified Chinese, server render and hydrated page alike", async ({ page }) => {
    // The server's HTML is already Chinese (nothing flashes to English while the WASM loads).
    const html = await (await page.request.get("/", { headers: { "accept-language": "zh-CN,zh;q=0.9" } })).text();
    expect(html).toContain('<html lang="zh-CN"');
    expect(html).toContain("选好商品后");
    await openShop(page);
    await expect(page.locator("html")).toHaveAttribute("lang", "zh-CN");
    await expect(page.getByTestId("nav-orders")).toHaveText("我的订单");
    await add(page, "TEA-OOLONG", 1);
    await expect(page.getByTestId("place-order")).toHaveText("提交订单");
    await placeOrder(page);
    await expect(page.getByTestId("status")).toContainText("等待付款");
    await expect(page.getByTestId("checkout")).toContainText("订单号");
    await noSeriousViolations(page, "the checkout in Chinese");
    await payOnPhoneInChinese(page);
    await expect(page).toHaveURL(/\/paid$/, { timeout: 15_000 });
    await expect(page.getByTestId("paid")).toContainText("付款成功");
    await noSeriousViolations(page, "the success page in Chinese");
    await page.getByTestId("nav-orders").click();
    await expect(page.getByTestId("order-status")).toHaveText("已付款");
    await noSeriousViolations(page, "my orders in Chinese");
  });
});

test.describe("a cancelled order in Chinese", () => {
  test.use({ locale: "zh-CN", baseURL: `http://127.0.0.1:${FAST_PORT}` });

  test("the failure page explains in Chinese and offers to order again", async ({ page }) => {
    await openShop(page);
    await add(page, "PIN-PANDA", 1);
    await placeOrder(page);
    await page.getByTestId("cancel").click();
    await expect(page).toHaveURL(/\/orders\/SP\w+\/failed$/, { timeout: 15_000 });
    await expect(page.getByTestId("failure-reason")).toHaveText("您已取消此订单。您没有被扣款。");
    await expect(page.getByTestId("order-again")).toHaveText("再次下单");
    await noSeriousViolations(page, "the failure page in Chinese");
  });
});

test("an English browser gets English, and the switch changes language at once and remembers it", async ({ page }) => {
  await openShop(page);
  await expect(page.locator("html")).toHaveAttribute("lang", "en");
  await add(page, "PIN-PANDA", 1);
  await expect(page.getByTestId("place-order")).toHaveText("Place order");
  const saved = (p: import("@playwright/test").Page) =>
    p.waitForResponse((r) => r.url().endsWith("/api/set_language") && r.status() === 200);

  let remembered = saved(page);
  await page.getByTestId("lang-switch").click();
  await expect(page.getByTestId("place-order")).toHaveText("提交订单");
  await expect(page.locator("html")).toHaveAttribute("lang", "zh-CN");
  await expect(page.locator('[data-sku="PIN-PANDA"]').getByTestId("qty")).toHaveText("1"); // the cart stays
  await remembered;
  await noSeriousViolations(page, "the catalogue in Chinese");

  // Remembered: a new page load in the same browser is Chinese, whatever Accept-Language says.
  await openShop(page);
  await expect(page.locator("html")).toHaveAttribute("lang", "zh-CN");
  await expect(page.getByTestId("lang-switch")).toHaveText("English");
  remembered = saved(page);
  await page.getByTestId("lang-switch").click();
  await expect(page.getByTestId("lang-switch")).toHaveText("中文");
  await remembered;
  await openShop(page);
  await expect(page.locator("html")).toHaveAttribute("lang", "en");
});
