import { test, expect, openShop, add, placeOrder, noSeriousViolations } from "./fixtures";
import { FAST_PORT } from "../playwright.config";

// This server gives shoppers 8 seconds to pay.
test.use({ baseURL: `http://127.0.0.1:${FAST_PORT}` });

async function stockOf(page: import("@playwright/test").Page, sku: string): Promise<string> {
  return (await page.locator(`[data-sku="${sku}"]`).getByTestId("stock").textContent())!.trim();
}

test("an unpaid order reaches the failure page by itself, and its stock comes back", async ({ page }) => {
  await openShop(page);
  const before = await stockOf(page, "NB-GRID");
  await add(page, "NB-GRID", 1);
  await placeOrder(page);
  await expect(page.getByTestId("status")).toContainText("Waiting for payment");
  await expect(page).toHaveURL(/\/orders\/SP\w+\/failed$/, { timeout: 20_000 });
  await expect(page.getByTestId("failure-reason")).toContainText("time to pay ran out");
  await openShop(page);
  expect(await stockOf(page, "NB-GRID")).toBe(before);
});

test("the shopper cancels, sees the failure page, and the stock is back", async ({ page }) => {
  await openShop(page);
  const before = await stockOf(page, "MUG-CELADON");
  await add(page, "MUG-CELADON", 2);
  await placeOrder(page);
  await page.getByTestId("cancel").click();
  await expect(page.getByTestId("status")).toContainText("Cancelling");
  await expect(page).toHaveURL(/\/orders\/SP\w+\/failed$/, { timeout: 15_000 });
  await expect(page.getByTestId("failure-reason")).toContainText("You cancelled this order");
  await openShop(page);
  expect(await stockOf(page, "MUG-CELADON")).toBe(before);
});

test("order again from the failure page places the same goods anew", async ({ page }) => {
  await openShop(page);
  await add(page, "PIN-PANDA", 2);
  await add(page, "BUN-RED", 1);
  const first = await placeOrder(page);
  await page.getByTestId("cancel").click();
  await expect(page).toHaveURL(/\/orders\/SP\w+\/failed$/, { timeout: 15_000 });
  await noSeriousViolations(page, "the failure page");
  await page.getByTestId("order-again").click();
  await expect(page).toHaveURL(/\/checkout\/SP\w+$/);
  expect(page.url()).not.toContain(first);
  await expect(page.getByTestId("amount")).toHaveText("¥26.52");
  await expect(page.getByTestId("checkout")).toContainText("Panda enamel pin × 2");
  await expect(page.getByTestId("checkout")).toContainText("× 1");
});
