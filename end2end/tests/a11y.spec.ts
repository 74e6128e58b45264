import { test, expect, openShop, add, placeOrder, noSeriousViolations } from "./fixtures";

test("every shopper page passes axe-core (no serious or critical violations)", async ({ page, context, errors }) => {
  await openShop(page);
  await noSeriousViolations(page, "the catalogue");
  await add(page, "PIN-PANDA", 1);
  await noSeriousViolations(page, "the catalogue with a cart");
  await placeOrder(page);
  await noSeriousViolations(page, "the checkout");

  const phone = await context.newPage();
  await phone.goto((await page.getByTestId("sandbox-scan").getAttribute("href"))!);
  await noSeriousViolations(phone, "the sandbox phone");
  await phone.getByRole("button", { name: /^Pay/ }).click();
  await expect(phone.getByTestId("phone-result")).toHaveText("Payment complete");
  await phone.close();

  await expect(page).toHaveURL(/\/paid$/, { timeout: 15_000 });
  await noSeriousViolations(page, "the success page");
  await page.getByTestId("nav-orders").click();
  await expect(page.getByTestId("order-line")).toHaveCount(1);
  await noSeriousViolations(page, "my orders");
  await page.goto("/checkout/SP00000000000000NOSUCHORDER1");
  await expect(page.getByTestId("not-found")).toBeVisible();
  await noSeriousViolations(page, "not found");
  // The 404 page's own status is the one error the browser may log here.
  const unexpected = errors.filter((e) => !/NOSUCHORDER1: Failed to load resource: .* 404/.test(e));
  errors.splice(0, errors.length, ...unexpected);
});

test("the checkout can be used by keyboard alone", async ({ page }) => {
  await openShop(page);
  // Into the cart and on to the checkout without a mouse.
  const inc = page.locator('[data-sku="PIN-PANDA"]').getByTestId("inc");
  await inc.focus();
  await page.keyboard.press("Enter");
  await expect(page.locator('[data-sku="PIN-PANDA"]').getByTestId("qty")).toHaveText("1");
  await page.getByTestId("place-order").focus();
  await page.keyboard.press("Enter");
  await expect(page).toHaveURL(/\/checkout\/SP\w+$/);
  await expect(page.locator("body[data-hydrated]")).toHaveCount(1);
  // Tab reaches the cancel button, and Enter cancels.
  let reached = false;
  for (let i = 0; i < 15 && !reached; i++) {
    await page.keyboard.press("Tab");
    reached = await page.getByTestId("cancel").evaluate((el) => el === document.activeElement).catch(() => false);
  }
  expect(reached, "the cancel button is reachable by Tab").toBe(true);
  await page.keyboard.press("Enter");
  await expect(page.getByTestId("status")).toContainText(/Cancelling|ended/);
});
