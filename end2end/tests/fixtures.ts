import { test as base, expect, Page } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";

// Every test fails on any uncaught page error or console error, in every page it opens
// (the checkout and the sandbox phone alike).
export const test = base.extend<{ errors: string[] }>({
  errors: [
    async ({ context }, use) => {
      const errors: string[] = [];
      const watch = (page: Page) => {
        page.on("pageerror", (e) => errors.push(`pageerror on ${page.url()}: ${e.message}`));
        page.on("console", (m) => {
          if (m.type() === "error") errors.push(`console.error on ${page.url()}: ${m.text()}`);
        });
      };
      context.pages().forEach(watch);
      context.on("page", watch);
      await use(errors);
      expect(errors, "page errors or console errors").toEqual([]);
    },
    { auto: true },
  ],
});
export { expect };

/** Opens the shop and waits until the WASM has hydrated it. */
export async function openShop(page: Page) {
  await page.goto("/");
  await expect(page.locator("body[data-hydrated]")).toHaveCount(1);
}

/** Adds `n` of the product with this SKU to the cart. */
export async function add(page: Page, sku: string, n = 1) {
  const card = page.locator(`[data-sku="${sku}"]`);
  for (let i = 0; i < n; i++) await card.getByTestId("inc").click();
  await expect(card.getByTestId("qty")).toHaveText(String(n));
}

/** Places the order in the cart; returns the checkout's order number. */
export async function placeOrder(page: Page): Promise<string> {
  await page.getByTestId("place-order").click();
  await expect(page).toHaveURL(/\/checkout\/SP\d{14}\w{12}$/);
  await expect(page.locator("body[data-hydrated]")).toHaveCount(1);
  const orderNo = (await page.getByTestId("order-no").textContent())!.trim();
  expect(page.url()).toContain(orderNo);
  return orderNo;
}

/** axe-core on the page as it is now: no serious or critical violation. */
export async function noSeriousViolations(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  expect(
    bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
    `axe on ${what}`,
  ).toEqual([]);
}

